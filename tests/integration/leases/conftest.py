"""Share the projection test helpers of ``tests/integration/projections``."""

from __future__ import annotations

import sys
from pathlib import Path

_HELPERS = str(Path(__file__).parents[1] / "projections")
if _HELPERS not in sys.path:
    sys.path.insert(0, _HELPERS)
