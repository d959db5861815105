"""core/OUTBOX.md: the complete example runs as written; every other block compiles."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import cqrs_ddd_persistence_sqlalchemy

DOC = Path(cqrs_ddd_persistence_sqlalchemy.__file__).parent / "core" / "OUTBOX.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_complete_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "outbox_example.py"
    script.write_text(BLOCKS[0])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "'published': 1" in done.stdout


def test_every_other_block_compiles() -> None:
    assert len(BLOCKS) >= 5
    for block in BLOCKS[1:]:
        compile(block, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
