"""core/OUTBOX.md, "Exactly-once effects": the end-to-end Kafka example runs as written.

The block is marked ``<!-- requires: kafka -->`` (tests/acceptance/docs_blocks.py): it runs in
a fresh interpreter against the session's broker, whose address replaces ``127.0.0.1:9092``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.acceptance.docs_blocks import README_KAFKA, extract

import cqrs_ddd_persistence_sqlalchemy

DOC = Path(cqrs_ddd_persistence_sqlalchemy.__file__).parent / "core" / "OUTBOX.md"


def test_outbox_docs_kafka_end_to_end_example_runs(kafka_bootstrap: str, tmp_path: Path) -> None:
    [block] = [b for b in extract(DOC.read_text()) if b.kafka]
    assert README_KAFKA in block.code
    script = tmp_path / "outbox_kafka_example.py"
    script.write_text(block.code.replace(README_KAFKA, kafka_bootstrap))
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'handled': 3, 'duplicates': 1" in done.stdout
