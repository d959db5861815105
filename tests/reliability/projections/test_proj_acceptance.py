"""Issue 7 acceptance: a projection built by the runner while 4 writers append equals the same
projection rebuilt from scratch, row for row, and every event was applied exactly once.

PostgreSQL: 50,000 events from 4 concurrent writers (commit-safe cursor under real concurrency).
SQLite (one writer at a time by design): 10,000 events, single worker. ``CQRS_SOAK=1`` multiplies
the sizes by 4.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from proj_support import counting_projection, snapshot, ticks, wait_for_checkpoint
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.ports.event_store import StreamState
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

SOAK = 4 if os.environ.get("CQRS_SOAK") == "1" else 1
WRITERS = 4
STREAMS_PER_WRITER = 25
CHUNK = 50


async def writer(
    store: SQLAlchemyEventStore, w: int, per_stream: int, appended: Counter[str]
) -> None:
    for start in range(0, per_stream, CHUNK):
        for s in range(STREAMS_PER_WRITER):
            stream = f"w{w}-s{s}"
            await store.append(
                ticks(stream, start, CHUNK),
                expected_version=start or StreamState.NO_STREAM,
            )
            appended[stream] += CHUNK
        await asyncio.sleep(0)  # let the other writers and the runner interleave


async def test_runner_build_equals_rebuild_with_concurrent_writers(
    library_tables: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    dialect_name: str,
) -> None:
    total = (50_000 if dialect_name == "postgresql" else 10_000) * SOAK
    writers = WRITERS if dialect_name == "postgresql" else 1
    per_stream = total // (writers * STREAMS_PER_WRITER)
    assert per_stream % CHUNK == 0
    event_store = SQLAlchemyEventStore(session_factory, listen=False)
    runner = ProjectionRunner(
        counting_projection("acceptance", "acceptance_counts"),
        event_store=event_store,
        session_factory=session_factory,
        batch_size=500,
        poll_interval=0.02,
    )
    appended: Counter[str] = Counter()
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.gather(
            *(writer(event_store, w, per_stream, appended) for w in range(writers))
        )
        assert sum(appended.values()) == total
        await wait_for_checkpoint(runner, total, limit_s=180)
    finally:
        await asyncio.wait_for(runner.stop(), 30)
        await running

    built = await snapshot(runner.store, "acceptance_counts")
    # exactly once: a plain upsert per event, so _version counts the applications
    assert {k: v["_version"] for k, v in built.items()} == dict(appended)
    assert {k: v["last_version"] for k, v in built.items()} == dict(appended)

    reports: list[int] = []
    fresh = ProjectionRunner(
        counting_projection("acceptance", "acceptance_counts"),
        event_store=event_store,
        session_factory=session_factory,
        batch_size=2_000,
    )
    await fresh.rebuild(progress=lambda p: reports.append(p.events_processed))
    await wait_for_checkpoint(fresh, total, limit_s=120)
    rebuilt = await snapshot(fresh.store, "acceptance_counts")
    assert rebuilt == built
    assert reports
    assert reports == sorted(reports)
