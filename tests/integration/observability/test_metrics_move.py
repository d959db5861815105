"""Documented metrics that move with the library's own actions on a real database (SQLite and
PostgreSQL), where tests/integration/observability/test_metrics.py only reads known content or
calls the recording hook: two leases taking over one another, a projection runner falling
behind and catching up, an open transaction holding the event store's horizon back, sagas run
by the orchestrator, and a unit of work ended by a real lock timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from otel_sdk import value
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import pg_engine_for, schema_of

from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_advanced_core.sagas import SagaOrchestrator, saga_step
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.errors import LeaseLostError, LockTimeoutError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork, create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner, SQLAlchemySagaRepository
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.leases import Lease
from cqrs_ddd_persistence_sqlalchemy.observability.gauges import DatabaseGauges

pytestmark = pytest.mark.usefixtures("library_tables", "meters")


def _count(name: str, **attributes: str) -> float:
    return value(name, **attributes) or 0.0


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``condition`` (other sessions of the server come and go; a bound, not a
    measurement)."""
    deadline = time.monotonic() + 30
    while not await condition():
        assert time.monotonic() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.05)


async def test_lease_losses_and_fencing_refusals_move_when_leases_take_over(
    engine: AsyncEngine,
) -> None:
    name = "metrics-leader"
    first = Lease(engine, name, duration=0.3, renew_interval=0.1)
    second = Lease(engine, name, duration=0.3, renew_interval=0.1)
    losses, refusals = (
        _count("cqrs.lease.losses", component=name),
        _count("cqrs.lease.fencing_refusals", component=name),
    )
    assert await first.acquire()
    assert not await second.acquire()  # live: nothing moves
    await asyncio.sleep(0.4)  # the first holder stalls past its lease (database clock)
    assert await second.acquire()
    assert _count("cqrs.lease.losses", component=name) == losses

    # The stale holder's write is refused by its token: one lost lease, one refusal.
    with pytest.raises(LeaseLostError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await first.fence(uow)
            await uow.commit()
    assert _count("cqrs.lease.losses", component=name) == losses + 1
    assert _count("cqrs.lease.fencing_refusals", component=name) == refusals + 1
    # Writing again without the lease: refused, no second loss.
    with pytest.raises(LeaseLostError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await first.fence(uow)
    assert _count("cqrs.lease.losses", component=name) == losses + 1
    assert _count("cqrs.lease.fencing_refusals", component=name) == refusals + 2

    # Now the second stalls and the first takes over: its heartbeat finds the lease lost.
    await asyncio.sleep(0.4)
    assert await first.acquire()
    assert not await second.renew()
    assert _count("cqrs.lease.losses", component=name) == losses + 2
    async with SQLAlchemyUnitOfWork(engine) as uow:  # the holder's writes pass
        await first.fence(uow)
        await uow.commit()
    assert _count("cqrs.lease.fencing_refusals", component=name) == refusals + 2
    await first.release()


async def test_projection_lag_and_checkpoint_age_follow_the_runner(engine: AsyncEngine) -> None:
    store = SQLAlchemyEventStore(engine)
    projection = Projection("order_count", collections=["order_count"])
    seen: list[str] = []

    @projection.on("OrderPlaced")
    async def placed(event: StoredEvent, ctx: ProjectionContext) -> None:
        seen.append(event.aggregate_id)

    runner = ProjectionRunner(
        projection,
        event_store=store,
        session_factory=async_sessionmaker(engine, expire_on_commit=False),
    )
    gauges = DatabaseGauges(engine)
    await store.append([StoredEvent(event_type="OrderPlaced", aggregate_id="o-1")])
    await store.append([StoredEvent(event_type="OrderPlaced", aggregate_id="o-2")])
    await runner.run_once(wait=True)
    await gauges.refresh()
    assert value("cqrs.projection.lag", projection="order_count") == 0

    # The runner is stopped while events arrive: the lag counts them, the checkpoint ages.
    for i in (3, 4, 5):
        await store.append(StoredEvent(event_type="OrderPlaced", aggregate_id=f"o-{i}"))
    await gauges.refresh()
    assert value("cqrs.projection.lag", projection="order_count") == 3
    first_age = value("cqrs.projection.checkpoint.age", projection="order_count")
    assert first_age is not None
    await asyncio.sleep(1.0)  # stalled long enough to tell from a fresh one on a loaded box
    await gauges.refresh()
    stalled_age = value("cqrs.projection.checkpoint.age", projection="order_count")
    assert stalled_age is not None and stalled_age > first_age

    # It runs again: the lag falls to 0 and the checkpoint is fresh.
    await runner.run_once(wait=True)
    assert seen == ["o-1", "o-2", "o-3", "o-4", "o-5"]
    await gauges.refresh()
    assert value("cqrs.projection.lag", projection="order_count") == 0
    caught_up_age = value("cqrs.projection.checkpoint.age", projection="order_count")
    assert caught_up_age is not None and caught_up_age < stalled_age


async def test_event_store_horizon_gauges_follow_an_open_transaction(
    engine: AsyncEngine, dialect_name: str
) -> None:
    store = SQLAlchemyEventStore(engine)
    gauges = DatabaseGauges(engine)

    async def lag() -> float | None:
        await gauges.refresh()
        return value("cqrs.eventstore.horizon.lag")

    if dialect_name == "sqlite":
        # One writer at a time: committed events are never held back, the gauges stay 0.
        await store.append([StoredEvent(event_type="E", aggregate_id="a")])
        assert await lag() == 0
        assert value("cqrs.eventstore.horizon.age") == 0
        return

    # The horizon is the server's: another session's transaction may hold it back for a moment
    # (the age is that of the server's oldest transaction), so the falls are awaited.
    async def settled() -> bool:
        return await lag() == 0

    await _until(settled, "no stored event held back")
    appended, release = asyncio.Event(), asyncio.Event()

    async def slow_writer() -> None:
        # Its own task: the unit of work is not the ambient one of the test's statements.
        async with SQLAlchemyUnitOfWork(engine) as slow:
            await store.append(StoredEvent(event_type="E", aggregate_id="slow"), uow=slow)
            appended.set()
            await release.wait()
            await slow.commit()

    writer = asyncio.create_task(slow_writer())
    try:
        await appended.wait()
        # Two events committed after the slow transaction began: stored, not yet visible.
        await store.append([StoredEvent(event_type="E", aggregate_id="fast") for _ in range(2)])
        assert await lag() == 2
        first_age = value("cqrs.eventstore.horizon.age")
        assert first_age is not None and first_age > 0
        await asyncio.sleep(0.2)
        await gauges.refresh()
        later_age = value("cqrs.eventstore.horizon.age")
        # at least as old as the slow transaction, open for 0.2 s and more by now
        assert later_age is not None and later_age >= 0.2
    finally:
        release.set()
        await writer
    await _until(settled, "the events visible after the commit")

    async def younger() -> bool:
        await gauges.refresh()
        age = value("cqrs.eventstore.horizon.age")
        return age is not None and age < later_age

    await _until(younger, "the horizon's age falls after the commit")


class TwoSteps(SagaState):
    card_refused: bool = False

    @saga_step(compensation="undo_reserve")
    async def reserve(self) -> None:
        pass

    @saga_step()
    async def charge(self) -> None:
        if self.card_refused:
            raise RuntimeError("card refused")

    async def undo_reserve(self) -> None:
        pass


async def test_saga_gauge_follows_the_orchestrator(engine: AsyncEngine) -> None:
    repo = SQLAlchemySagaRepository(TwoSteps, engine)
    orchestrator = SagaOrchestrator(repo)
    gauges = DatabaseGauges(engine)
    waiting = [TwoSteps(), TwoSteps()]
    for saga in waiting:  # started, not driven yet (a worker will resume them)
        saga.start()
        await repo.add(saga)
    await gauges.refresh()
    assert value("cqrs.sagas", status="running") == 2
    assert value("cqrs.sagas", status="completed") is None

    await orchestrator.resume(waiting[0])
    await orchestrator.run(TwoSteps(card_refused=True))
    await gauges.refresh()
    assert value("cqrs.sagas", status="running") == 1
    assert value("cqrs.sagas", status="completed") == 1
    assert value("cqrs.sagas", status="compensated") == 1

    await orchestrator.resume(waiting[1])
    await gauges.refresh()
    assert value("cqrs.sagas", status="running") is None
    assert value("cqrs.sagas", status="completed") == 2


async def test_a_real_lock_timeout_counts_a_retryable_failure(
    engine: AsyncEngine, dialect_name: str
) -> None:
    # A second engine on the same database that waits 200 ms for a lock.
    if dialect_name == "sqlite":
        impatient = create_engine(str(engine.url), lock_timeout_ms=200)
    else:
        schema = schema_of(engine)
        assert schema is not None
        impatient = pg_engine_for(schema, lock_timeout_ms=200)
    store = SQLAlchemyEventStore(engine)
    retryable = _count("cqrs.uow.retryable_failures")
    conflicts = _count("cqrs.uow.conflicts")
    commits = _count("cqrs.uow.commits")
    try:
        async with SQLAlchemyUnitOfWork(engine) as holder:
            await store.append(StoredEvent(event_type="E", aggregate_id="x"), uow=holder)
            with pytest.raises(LockTimeoutError):
                async with SQLAlchemyUnitOfWork(impatient) as waiter:
                    await SQLAlchemyEventStore(impatient).append(
                        StoredEvent(event_type="E", aggregate_id="x"), uow=waiter
                    )
                    await waiter.commit()
            await holder.commit()
    finally:
        await impatient.dispose()
    assert _count("cqrs.uow.retryable_failures") == retryable + 1
    assert _count("cqrs.uow.conflicts") == conflicts
    assert _count("cqrs.uow.commits") == commits + 1
