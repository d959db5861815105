"""Reuse the saga models of the integration tests."""

from __future__ import annotations

import sys
from pathlib import Path

_MODELS = str(Path(__file__).parents[2] / "integration" / "sagas")
if _MODELS not in sys.path:
    sys.path.insert(0, _MODELS)
