"""Projection runners and their lease, in one process: exactly one runner applies batches at
any time (checked on every batch, across leadership changes), a stale leader's batch is refused
by the fence and changes nothing, and nothing stays held once every runner has stopped.

The runners take their database from the ``database_url`` fixture (engines of their own, as
separate services would have), so the same tests can run through another route to the server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from proj_support import TICK, append_round_robin, counting_projection, snapshot
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import DatabaseUrl

from cqrs_ddd_advanced_core.projections import ProjectionContext, ProjectionProgress
from cqrs_ddd_core.errors import LeaseLostError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import Lease, ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.tables import leases_table


@dataclass(frozen=True)
class Applied:
    """One event applied by a runner: who, under which token, when (this process's clock)."""

    runner: str
    token: int | None
    position: int | None
    at: float


@dataclass(frozen=True)
class Committed:
    """One committed batch as its runner saw it, and the lease row right after."""

    runner: str
    token: int | None
    current_token: int | None
    current_owner: str | None
    owner: str


def recording_runner(
    tag: str,
    engine: AsyncEngine,
    applied: list[Applied],
    committed: list[Committed],
    **kwargs: Any,
) -> tuple[ProjectionRunner, Any]:
    """A runner of the counting projection ``shared`` that records every event it applies and,
    through its progress callback, every batch it commits."""
    projection = counting_projection("shared", "shared_counts")
    runner_box: list[ProjectionRunner] = []

    @projection.on(TICK)
    def record(event: StoredEvent, ctx: ProjectionContext) -> None:
        token = runner_box[0].lease.token
        applied.append(Applied(tag, token, event.position, time.monotonic()))

    factory = async_sessionmaker(engine, expire_on_commit=False)
    runner = ProjectionRunner(
        projection,
        factory,
        event_store=SQLAlchemyEventStore(factory, listen=False),
        poll_interval=0.02,
        **kwargs,
    )
    runner_box.append(runner)

    async def progress(p: ProjectionProgress) -> None:
        if p.caught_up:
            return
        row = await runner.lease.holder()
        committed.append(
            Committed(
                tag,
                runner.lease.token,
                None if row is None else row["token"],
                None if row is None else row["owner"],
                runner.lease.owner,
            )
        )

    return runner, progress


def assert_one_leader_at_a_time(applied: list[Applied]) -> list[tuple[str, int | None]]:
    """The applications, in time order, form runs of one runner under one token each, every
    run under a larger token than the one before: no two runners interleaved. Returns the runs."""
    runs: list[tuple[str, int | None]] = []
    for item in sorted(applied, key=lambda a: a.at):
        if not runs or runs[-1] != (item.runner, item.token):
            runs.append((item.runner, item.token))
    tokens = [token for _, token in runs]
    assert None not in tokens
    assert tokens == sorted(set(tokens)), f"runs overlap: {runs}"  # type: ignore[type-var]
    return runs


async def wait_for(runner: ProjectionRunner, total: int, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        checkpoint = await runner.status()
        done = checkpoint.events_processed if checkpoint else 0
        if done >= total:
            assert done == total
            return
        assert time.monotonic() < deadline, f"{done} of {total} events after {limit_s}s"
        await asyncio.sleep(0.02)


async def assert_nothing_held(engine: AsyncEngine, name: str) -> None:
    """Once every runner stopped, the lease is free at once: expired by the database's clock,
    and a newcomer takes it with the next token."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(leases_table).where(leases_table.c.name == name))).one()
    newcomer = Lease(engine, name, duration=30)
    assert await newcomer.acquire()
    assert newcomer.token == row.token + 1
    await newcomer.release()


async def test_two_runners_exactly_one_active_on_every_batch(database_url: DatabaseUrl) -> None:
    engines = [database_url.engine(), database_url.engine()]
    applied: list[Applied] = []
    committed: list[Committed] = []
    event_store = SQLAlchemyEventStore(engines[0], listen=False)
    runners: dict[str, ProjectionRunner] = {}
    tasks: dict[str, asyncio.Task[None]] = {}

    def start(tag: str, engine: AsyncEngine) -> None:
        runner, progress = recording_runner(
            tag, engine, applied, committed, batch_size=25, lease_duration=5
        )
        runners[tag] = runner
        tasks[tag] = asyncio.create_task(runner.run(progress=progress))

    try:
        start("A1", engines[0])
        start("B1", engines[1])
        total = 0
        for round_ in range(1, 5):
            total += await append_round_robin(
                event_store, streams=4, per_stream=50, prefix=f"r{round_}-"
            )
            await wait_for(next(iter(runners.values())), total)
            # hand over: stop whoever leads (it releases its lease), start a fresh runner
            [leader] = [t for t, r in runners.items() if r.lease.token is not None]
            await asyncio.wait_for(runners[leader].stop(), 10)
            await tasks.pop(leader)
            del runners[leader]
            start(f"{leader[0]}{round_ + 1}", engines[round_ % 2])
        total += await append_round_robin(event_store, streams=4, per_stream=50, prefix="last-")
        await wait_for(next(iter(runners.values())), total)
    finally:
        for runner in runners.values():
            runner.stop()
        await asyncio.wait_for(asyncio.gather(*tasks.values()), 10)

    try:
        runs = assert_one_leader_at_a_time(applied)
        assert len(runs) >= 5  # leadership changed at least at every hand-over
        # every batch was committed by the lease's current holder, under its current token
        assert committed
        for batch in committed:
            assert batch.token is not None and batch.token == batch.current_token
            assert batch.current_owner == batch.owner
        # no batch applied twice, none skipped
        docs = await snapshot(runners_store(engines[0]), "shared_counts")
        assert len(docs) == 20
        assert {d["_version"] for d in docs.values()} == {50}
        assert len(applied) == total
        await assert_nothing_held(engines[0], "projection:shared")
    finally:
        for engine in engines:
            await engine.dispose()


def runners_store(engine: AsyncEngine) -> Any:
    from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore

    return SQLAlchemyProjectionStore(async_sessionmaker(engine, expire_on_commit=False))


async def test_a_stale_leaders_batch_is_refused_and_changes_nothing(
    database_url: DatabaseUrl,
) -> None:
    """Leader A stalls (here: in its progress callback) past its lease; B takes the projection
    over, catches up and stops. A then wakes up with new events to apply: its batch is refused
    by the fence (LeaseLostError), and the read model and checkpoint are exactly B's."""
    engines = [database_url.engine(), database_url.engine()]
    applied: list[Applied] = []
    committed: list[Committed] = []
    event_store = SQLAlchemyEventStore(engines[0], listen=False)
    a, a_progress = recording_runner(
        "A", engines[0], applied, committed, batch_size=10, lease_duration=0.5
    )
    b, b_progress = recording_runner("B", engines[1], applied, committed, batch_size=10)
    stalled, wake = asyncio.Event(), asyncio.Event()

    async def stall_once(p: ProjectionProgress) -> None:
        await a_progress(p)
        if not stalled.is_set():
            stalled.set()
            await wake.wait()  # no renewal meanwhile: the lease expires under A

    try:
        await append_round_robin(event_store, streams=2, per_stream=50)
        a_task = asyncio.create_task(a.run_once(progress=stall_once))
        await asyncio.wait_for(stalled.wait(), 30)
        b_task = asyncio.create_task(b.run(progress=b_progress))
        await wait_for(b, 100)
        assert b.lease.token == 2
        await asyncio.wait_for(b.stop(), 10)
        await b_task
        before = await snapshot(runners_store(engines[0]), "shared_counts")
        await append_round_robin(event_store, streams=2, per_stream=5, prefix="late-")
        wake.set()
        with pytest.raises(LeaseLostError):
            await asyncio.wait_for(a_task, 30)
        assert a.lease.token is None
        checkpoint = await a.status()
        assert checkpoint is not None and checkpoint.events_processed == 100
        assert await snapshot(runners_store(engines[0]), "shared_counts") == before
        assert {d["_version"] for d in before.values()} == {50}
        assert [x.runner for x in applied] == ["A"] * 10 + ["B"] * 90
        assert_one_leader_at_a_time(applied)
        # a runner that holds the lease applies the late events, once
        c, _ = recording_runner("C", engines[1], applied, committed)
        assert await c.run_once() == 10
        assert {(x.runner, x.token) for x in applied[100:]} == {("C", 3)}
        await assert_nothing_held(engines[0], "projection:shared")
    finally:
        for engine in engines:
            await engine.dispose()
