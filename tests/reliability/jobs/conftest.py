"""Make the multi-process helpers and the shared job models importable."""

from __future__ import annotations

import sys
from pathlib import Path

for _path in (Path(__file__).parent, Path(__file__).parents[2] / "integration" / "jobs"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
