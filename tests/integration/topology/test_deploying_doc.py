"""The python blocks of docs/deploying.md run through the session's PgBouncer (the block's
``pgbouncer:6432`` URL is replaced by the real one, on the driver of the test URL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.acceptance.conftest import ROOT, cli_env
from tests.conftest import PG_URL
from tests.topology.pgbouncer import Bouncer

DOC = ROOT / "docs" / "deploying.md"
DOC_URL = "postgresql+asyncpg://postgres@pgbouncer:6432/test"
RUNNER = ROOT / "tests" / "acceptance" / "docs_blocks.py"


def test_deploying_doc_blocks_run_through_pgbouncer(pgbouncer: Bouncer, tmp_path: Path) -> None:
    text = DOC.read_text()
    assert DOC_URL in text
    doc = tmp_path / "deploying.md"
    doc.write_text(text.replace(DOC_URL, pgbouncer.url(PG_URL)))
    done = subprocess.run(
        [sys.executable, "-W", "error", str(RUNNER), str(doc)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 block(s) ran" in done.stdout
