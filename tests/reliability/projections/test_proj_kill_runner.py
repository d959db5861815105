"""A projection runner process killed (SIGKILL) in the middle of a batch, restarted, killed again
and finally run to the end: the final table equals a rebuild from scratch, and no event was
applied twice or skipped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from proj_support import (
    append_round_robin,
    counting_projection,
    run_until,
    snapshot,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.conftest import PG_URL, schema_of

from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

CHILD = Path(__file__).with_name("proj_kill_child.py")
SOAK = os.environ.get("CQRS_SOAK") == "1"
STREAMS, PER_STREAM = (40, 500) if SOAK else (20, 250)
#: Where each child is killed: its n-th event (mid-batch of 500). Soak: more kills.
KILL_AT = (1_250, 777, 2_021, 333, 1_499, 901) if SOAK else (1_250, 777)


async def run_child_until_signal(url: str, schema: str, signal_at: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        url,
        schema,
        str(signal_at),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 90)
        if not line.startswith(b"MID-BATCH"):
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"child exited early: {err.decode()[-2000:]}")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


async def test_killed_runner_restarts_exactly_where_it_committed(
    library_tables: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    dialect_name: str,
) -> None:
    event_store = SQLAlchemyEventStore(session_factory, listen=False)
    total = await append_round_robin(event_store, STREAMS, PER_STREAM, chunk=50)
    if dialect_name == "postgresql":
        url, schema = PG_URL, schema_of(library_tables) or "-"
    else:
        url, schema = library_tables.url.render_as_string(hide_password=False), "-"
    projection = counting_projection("killed", "killed_counts")
    observer = ProjectionRunner(
        projection, event_store=event_store, session_factory=session_factory
    )

    committed = 0
    for signal_at in KILL_AT:
        await run_child_until_signal(url, schema, signal_at)
        checkpoint = await observer.status()
        assert checkpoint is not None
        # the batch holding the signal event died with the process: nothing of it is committed
        assert committed <= checkpoint.events_processed < committed + signal_at
        docs = await snapshot(observer.store, "killed_counts")
        assert sum(d["_version"] for d in docs.values()) == checkpoint.events_processed
        committed = checkpoint.events_processed

    # a third runner (this process) finishes the job; it waits for the dead one's lock to go
    await run_until(observer, total, limit_s=120)
    final = await snapshot(observer.store, "killed_counts")
    assert {d["_version"] for d in final.values()} == {PER_STREAM}
    assert {d["last_version"] for d in final.values()} == {PER_STREAM}

    fresh = ProjectionRunner(
        counting_projection("killed", "killed_counts"),
        event_store=event_store,
        session_factory=session_factory,
        batch_size=1_000,
    )
    await fresh.rebuild()
    await run_until(fresh, total, limit_s=120)
    assert await snapshot(fresh.store, "killed_counts") == final
