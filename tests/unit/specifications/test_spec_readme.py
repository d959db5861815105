"""The READMEs' Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
READMES = [
    ROOT / "packages/cqrs-ddd-specifications/README.md",
    ROOT
    / "packages/cqrs-ddd-persistence-sqlalchemy/src/cqrs_ddd_persistence_sqlalchemy"
    / "specifications/README.md",
]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_spec_readme_examples_run(readme: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.DOTALL)
    assert blocks
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", block], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
