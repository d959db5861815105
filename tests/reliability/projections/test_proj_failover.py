"""Several runners of one projection: one works, the others stand by and take over when the
leader stops or loses its lease; every event is still applied exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from proj_support import (
    TICK,
    append_round_robin,
    counting_projection,
    snapshot,
    wait_for_checkpoint,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import ProjectionContext
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.tables import leases_table

Factory = async_sessionmaker[AsyncSession]


def tagged_runner(
    tag: str, applied_by: list[str], event_store: SQLAlchemyEventStore, factory: Factory
) -> ProjectionRunner:
    projection = counting_projection("failover", "failover_counts")

    @projection.on(TICK)
    def record(event: StoredEvent, ctx: ProjectionContext) -> None:
        applied_by.append(tag)

    return ProjectionRunner(
        projection,
        event_store=event_store,
        session_factory=factory,
        batch_size=50,
        poll_interval=0.02,
    )


async def test_standby_takes_over_when_the_leader_stops(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    event_store = SQLAlchemyEventStore(session_factory, listen=False)
    applied_by: list[str] = []
    runners = {t: tagged_runner(t, applied_by, event_store, session_factory) for t in "AB"}
    tasks = {t: asyncio.create_task(runners[t].run()) for t in "AB"}
    try:
        await append_round_robin(event_store, streams=5, per_stream=40)
        await wait_for_checkpoint(runners["A"], 200)
        assert len(set(applied_by)) == 1  # one runner did all the work
        leader = applied_by[0]
        standby = "B" if leader == "A" else "A"
        await asyncio.wait_for(runners[leader].stop(), 10)
        await tasks[leader]
        applied_by.clear()
        await append_round_robin(event_store, streams=5, per_stream=40, prefix="more-")
        await wait_for_checkpoint(runners[standby], 400)
        assert set(applied_by) == {standby}
    finally:
        for runner in runners.values():
            runner.stop()
        await asyncio.wait_for(asyncio.gather(*tasks.values()), 10)
    docs = await snapshot(runners["A"].store, "failover_counts")
    assert {d["_version"] for d in docs.values()} == {40}
    assert len(docs) == 10


async def test_leader_whose_lease_is_taken_over_stands_by(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    """The leader's lease is expired under it (as if it had stalled past its duration): the
    standby takes it over with the next token, the old leader's next batch is refused by the
    fence, and every event is still applied once."""
    event_store = SQLAlchemyEventStore(session_factory, listen=False)
    applied_by: list[str] = []
    runners = {t: tagged_runner(t, applied_by, event_store, session_factory) for t in "AB"}
    tasks = [asyncio.create_task(r.run()) for r in runners.values()]
    try:
        await append_round_robin(event_store, streams=4, per_stream=50)
        await wait_for_checkpoint(runners["A"], 200)
        leader = applied_by[0]
        async with library_tables.begin() as conn:
            await conn.execute(
                sa.update(leases_table)
                .where(leases_table.c.name == "projection:failover")
                .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
        standby = runners["B" if leader == "A" else "A"]
        for _ in range(500):  # it polls every 20 ms
            if standby.lease.token is not None:
                break
            await asyncio.sleep(0.02)
        assert standby.lease.token == 2
        applied_by.clear()
        await append_round_robin(event_store, streams=4, per_stream=50, prefix="after-")
        await wait_for_checkpoint(runners["A"], 400)
        assert set(applied_by) == {"B" if leader == "A" else "A"}
    finally:
        for runner in runners.values():
            runner.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    docs = await snapshot(runners["A"].store, "failover_counts")
    assert {d["_version"] for d in docs.values()} == {50}
    assert len(docs) == 8
