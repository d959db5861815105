"""Readers of the global log on an engine with a standby: the subscriber and the projection
runner read events from the standby (held back there while replay is delayed) and write on the
primary."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from tests.topology.standby import Standby

from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_core import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner, SQLAlchemyProjectionStore
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore


async def test_a_subscriber_reads_the_standby_and_wakes_on_the_primary(
    routed, standby: Standby
) -> None:
    engine = routed(max_replica_lag=3600, read_your_writes_timeout=0)
    store = SQLAlchemyEventStore(engine, poll_interval=5)  # LISTEN (on the primary) wakes it
    seen: list[StoredEvent] = []
    arrived = asyncio.Event()

    async def tail() -> None:
        async for event in store.subscribe():
            seen.append(event)
            arrived.set()

    standby.set_delay(3600)
    task = asyncio.create_task(tail())
    try:
        await asyncio.sleep(0.3)  # subscribed (LISTEN) and caught up
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await store.append(StoredEvent(event_type="Held", aggregate_id="a"), uow=uow)
            await uow.commit()
        # Woken by the primary's NOTIFY, it reads the standby, which has not replayed it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), 1.0)
        assert seen == []
        standby.set_delay(0)  # replayed now: the subscriber's re-reads find it
        await asyncio.wait_for(arrived.wait(), 30)
        assert [e.event_type for e in seen] == ["Held"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_projection_runner_reads_events_from_the_standby(routed, standby: Standby) -> None:
    engine = routed(max_replica_lag=3600, read_your_writes_timeout=0)
    events = SQLAlchemyEventStore(engine, listen=False)
    # A name of its own: the runner's lock is the cluster's (tests in parallel share it).
    projection = Projection(
        f"replica_counts_{uuid.uuid4().hex[:8]}", collections=["replica_counts"]
    )

    @projection.on("Counted")
    async def counted(event: StoredEvent, ctx: ProjectionContext) -> None:
        await ctx.upsert("replica_counts", event.aggregate_id, {"n": event.payload["n"]})

    runner = ProjectionRunner(projection, engine, event_store=events)
    docs = SQLAlchemyProjectionStore(engine)
    await docs.ensure_collection("replica_counts")
    standby.wait_replayed()
    standby.set_delay(3600)
    for n in range(3):
        await events.append(
            StoredEvent(event_type="Counted", aggregate_id=f"c{n}", payload={"n": n})
        )
    assert await runner.run_once() == 0  # the standby has none of them yet
    standby.set_delay(0)
    standby.wait_replayed()
    assert await runner.run_once() == 3  # read on the standby, applied on the primary
    async with SQLAlchemyUnitOfWork(engine) as uow:
        assert await docs.count("replica_counts", uow=uow) == 3
