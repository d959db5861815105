"""SQLite crash consistency: a writer process is SIGKILLed at random moments (20 iterations,
100 soak) while it commits units of work (3 events + 3 outbox messages each) to one file.

Afterwards: ``PRAGMA integrity_check`` is ok; every batch the writer acknowledged (after its
commit returned) is there; no batch is partial (3 events and 3 messages, or nothing); every
stream's versions are contiguous; the file keeps working for new writers.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from tests.reliability import rel_service_proc
from tests.reliability.rel_faults import soak

from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata

pytestmark = pytest.mark.slow

ITERATIONS = soak(20, 100)


async def test_rel_sqlite_writer_sigkilled_at_random_points(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    acks = tmp_path / "acks.txt"
    acks.touch()
    ctx = rel_service_proc.context()
    ready = ctx.Queue()
    rng = random.Random(7)
    for iteration in range(ITERATIONS + 1):
        proc = ctx.Process(
            target=rel_service_proc.write_sqlite,
            args=(str(path), iteration * 100_000, str(acks), ready),
            daemon=True,
        )
        proc.start()
        assert await asyncio.to_thread(ready.get, True, 60) == "writer"
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        assert proc.is_alive(), proc.exitcode
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.join, 30)
        assert proc.exitcode == -signal.SIGKILL

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        events = db.execute("SELECT event_id, stream_id, version FROM cqrs_events").fetchall()
        messages = [r[0] for r in db.execute("SELECT message_id FROM outbox_messages")]
    finally:
        db.close()
    acked = {int(x) for x in acks.read_text().split()}
    batches_e = Counter(e[0].rsplit("-", 1)[0][2:] for e in events)
    batches_m = Counter(m.rsplit("-", 1)[0][2:] for m in messages)
    assert set(batches_e.values()) <= {3} and set(batches_m.values()) <= {3}  # no partial batch
    assert set(batches_e) == set(batches_m)  # events and messages committed together
    stored = {int(b) for b in batches_e}
    assert acked <= stored  # every acknowledged commit survived
    assert len(stored - acked) <= ITERATIONS + 1  # at most the one in flight per kill
    per_stream: dict[str, list[int]] = {}
    for _, stream, version in events:
        per_stream.setdefault(stream, []).append(version)
    for stream, versions in per_stream.items():
        assert sorted(versions) == list(range(1, len(versions) + 1)), stream
    assert len(acked) > ITERATIONS  # the writers did work between the kills
    print(
        f"sqlite crash: {ITERATIONS + 1} kills, {len(stored)} batches committed, "
        f"{len(stored - acked)} committed but unacknowledged at a kill"
    )
