"""Make this directory's helper module importable and register its fixtures (the suite runs
with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from otel_sdk import meters, spans  # noqa: E402

__all__ = ["meters", "spans"]
