"""Several runners of one projection: one works, the others stand by and take over when the
leader stops or loses its lock connection; every event is still applied exactly once."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from proj_support import (
    TICK,
    append_round_robin,
    counting_projection,
    snapshot,
    wait_for_checkpoint,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.conftest import schema_of

from cqrs_ddd_advanced_core.projections import ProjectionContext
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.locks import lock_key

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


@pytest.mark.postgres_only
async def test_leader_losing_its_lock_connection_is_replaced(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    event_store = SQLAlchemyEventStore(session_factory, listen=False)
    applied_by: list[str] = []
    runners = {t: tagged_runner(t, applied_by, event_store, session_factory) for t in "AB"}
    tasks = [asyncio.create_task(r.run()) for r in runners.values()]
    try:
        await append_round_robin(event_store, streams=4, per_stream=50)
        await wait_for_checkpoint(runners["A"], 200)
        key = lock_key(schema_of(library_tables) or "public", "failover")
        async with library_tables.connect() as conn:
            holder = (
                await conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND classid = :hi AND objid = :lo AND objsubid = 1"
                    ),
                    {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
                )
            ).scalar_one()
            await conn.execute(sa.select(sa.func.pg_terminate_backend(holder)))
        await append_round_robin(event_store, streams=4, per_stream=50, prefix="after-")
        await wait_for_checkpoint(runners["A"], 400)
    finally:
        for runner in runners.values():
            runner.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    docs = await snapshot(runners["A"].store, "failover_counts")
    assert {d["_version"] for d in docs.values()} == {50}
    assert len(docs) == 8
