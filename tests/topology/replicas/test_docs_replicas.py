"""The ```python blocks of docs/replicas.md run, against the test server and its standby."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url
from tests.acceptance.docs_blocks import README_PG_URL, extract
from tests.conftest import PG_URL, _admin
from tests.topology.standby import Standby

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "replicas.md"
DOC_STANDBY_URL = "postgresql+asyncpg://postgres@127.0.0.1:5433/test"


async def test_replicas_doc_blocks_run(standby: Standby, tmp_path: Path) -> None:
    blocks = [b for b in extract(DOC.read_text()) if not b.no_run]
    assert blocks
    name = f"doc_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        standby.wait_replayed()
        primary = make_url(PG_URL).set(drivername="postgresql+asyncpg", database=name)
        replica = make_url(standby.url("asyncpg")).set(database=name)
        code = "\n".join(b.code for b in blocks)
        code = code.replace(README_PG_URL, primary.render_as_string(hide_password=False))
        code = code.replace(DOC_STANDBY_URL, replica.render_as_string(hide_password=False))
        script = tmp_path / "replicas_doc.py"
        script.write_text(code)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-W", "error", str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
