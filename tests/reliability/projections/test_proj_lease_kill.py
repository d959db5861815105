"""Two projection runner processes share one projection through its lease: the leader is
killed (SIGKILL, by its pid, found in the lease row), the other takes over once the lease has
expired, every event is applied exactly once and in order of tokens, and once the survivor is
stopped (SIGTERM) nothing is left held.

The processes take their database from the ``database_url`` fixture (so that the test can run
through another route to the server, e.g. a pooler, by parametrising that fixture).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from proj_support import append_round_robin, snapshot
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import DatabaseUrl

from cqrs_ddd_persistence_sqlalchemy.advanced import Lease, SQLAlchemyProjectionStore
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.tables import leases_table, projection_positions_table

CHILD = Path(__file__).with_name("proj_lease_child.py")
LEASE = "projection:leased"
LEASE_SECONDS = 2.0
STREAMS, PER_ROUND = 10, 60


async def start_child(database: DatabaseUrl) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        *database.argv(),
        str(LEASE_SECONDS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line.startswith(b"READY"):
        err = await proc.stderr.read() if proc.stderr else b""
        raise AssertionError(f"child exited early: {err.decode()[-2000:]}")
    return proc


async def lease_row(engine: AsyncEngine) -> sa.Row[tuple[object, ...]] | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(leases_table).where(leases_table.c.name == LEASE))
        ).one_or_none()


async def events_processed(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        done = (
            await conn.execute(
                sa.select(projection_positions_table.c.events_processed).where(
                    projection_positions_table.c.projection == "leased"
                )
            )
        ).scalar_one_or_none()
    return done or 0


async def wait_until(what: str, check: object, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not {what} after {limit_s}s"
        await asyncio.sleep(0.05)


async def test_killed_leader_is_replaced_after_expiry_and_nothing_is_applied_twice(
    database_url: DatabaseUrl, library_tables: AsyncEngine
) -> None:
    engine = library_tables
    event_store = SQLAlchemyEventStore(engine, listen=False)
    children = [await start_child(database_url), await start_child(database_url)]
    try:

        async def leading() -> bool:
            return await lease_row(engine) is not None

        await wait_until("leading", leading)
        first = await lease_row(engine)
        assert first is not None and first.token == 1
        leader_pid = int(str(first.owner).split(":")[-2])
        [leader] = [c for c in children if c.pid == leader_pid]
        [survivor] = [c for c in children if c.pid != leader_pid]
        total = await append_round_robin(event_store, STREAMS, PER_ROUND, prefix="a-")
        # kill it right after its first committed batch (its own report: polling the database
        # from here may lose the race for SQLite's write lock to the leader's batches)
        assert leader.stdout is not None
        line = await asyncio.wait_for(leader.stdout.readline(), 60)
        assert line.startswith(b"BATCH"), line
        leader.send_signal(signal.SIGKILL)
        assert await leader.wait() == -signal.SIGKILL
        killed_at = await events_processed(engine)
        assert killed_at < total  # it died while leading, with work left

        total += await append_round_robin(event_store, STREAMS, PER_ROUND, prefix="b-")

        async def caught_up() -> bool:
            return await events_processed(engine) == total

        await wait_until("caught up", caught_up)
        taken = await lease_row(engine)
        assert taken is not None
        assert taken.token == 2 and int(str(taken.owner).split(":")[-2]) == survivor.pid

        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(survivor.wait(), 30) == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.send_signal(signal.SIGKILL)
            await child.wait()

    # nothing is left held: a newcomer takes the lease at once, with the next token
    newcomer = Lease(engine, LEASE, duration=30)
    assert await newcomer.acquire()
    assert newcomer.token == 3
    await newcomer.release()

    store = SQLAlchemyProjectionStore(async_sessionmaker(engine, expire_on_commit=False))
    counts = await snapshot(store, "leased_counts")
    assert len(counts) == 2 * STREAMS
    assert {d["_version"] for d in counts.values()} == {PER_ROUND}  # none twice, none skipped
    log = sorted((await snapshot(store, "leased_log")).values(), key=lambda d: d["position"])
    assert len(log) == total
    assert {d["_version"] for d in log} == {1}
    tokens = [d["token"] for d in log]
    assert tokens == sorted(tokens) and set(tokens) == {1, 2}  # the killed leader, then the other
    assert {d["pid"] for d in log if d["token"] == 2} == {survivor.pid}
    assert {d["pid"] for d in log if d["token"] == 1} == {leader_pid}
