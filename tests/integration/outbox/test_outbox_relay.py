"""OutboxRelay and UoW integration on SQLite and PostgreSQL (in-process publishers)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher, LoggingPublisher
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff

SessionFactory = async_sessionmaker[AsyncSession]


def fast_outbox(engine: AsyncEngine, **kw: object) -> SQLAlchemyOutboxStorage:
    kw.setdefault("lease_seconds", 5.0)
    kw.setdefault("max_attempts", 3)
    kw.setdefault("backoff", Backoff(base=0.05, jitter=0.1))
    return SQLAlchemyOutboxStorage(engine, **kw)  # type: ignore[arg-type]


async def save(outbox: SQLAlchemyOutboxStorage, sf: SessionFactory, n: int) -> list[str]:
    messages = [OutboxMessage(event_type="Tick", payload={"n": i}) for i in range(n)]
    async with SQLAlchemyUnitOfWork(sf) as uow:
        await outbox.save_messages(messages, uow=uow)
        await uow.commit()
    return [m.message_id for m in messages]


async def drain(relay: OutboxRelay, *, until: float = 10.0) -> None:
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        if await relay.run_once() == 0:
            stats = await relay.outbox.stats()
            if stats.pending == 0:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("outbox not drained in time")


async def test_uow_event_sink_writes_domain_events_in_the_same_transaction(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables)
    order = ContractOrder.place("o-1", "c-1", Decimal("9.50"))
    async with SQLAlchemyUnitOfWork(session_factory, event_sinks=[outbox]) as uow:
        uow.register(order)
        await uow.rollback()
    assert await outbox.get_pending() == []

    order = ContractOrder.place("o-2", "c-1", Decimal("9.50"))
    [event] = order.pending_events
    async with SQLAlchemyUnitOfWork(session_factory, event_sinks=[outbox]) as uow:
        uow.register(order)
        await uow.commit()
    [message] = await outbox.get_pending()
    assert message.event_type == "ContractOrderPlaced"
    assert message.partition_key == "o-2"
    assert message.payload["total"] in ("9.50", Decimal("9.50"))
    assert message.message_id == event.event_id
    assert order.pending_events == ()


async def test_relay_publishes_and_acks(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables)
    ids = await save(outbox, session_factory, 25)
    publisher = InMemoryPublisher()
    relay = OutboxRelay(outbox, publisher, batch_size=10, listen=False)
    await drain(relay)
    assert sorted(publisher.ids) == sorted(ids)
    assert relay.metrics.published == relay.metrics.claimed == 25
    stats = await outbox.stats()
    assert (stats.done, stats.pending, stats.dead) == (25, 0, 0)
    await relay.refresh_stats()
    assert relay.metrics.lag_seconds == 0.0
    assert await outbox.purge(0) == 25


async def test_refusing_broker_backs_off_dead_letters_and_requeue_recovers(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    # A backoff long enough that the second claim comes before it ends even on a loaded box.
    outbox = fast_outbox(library_tables, max_attempts=3, backoff=Backoff(base=0.5, jitter=0.1))
    ids = await save(outbox, session_factory, 4)
    refusing = True
    attempts: list[float] = []

    def fail(m: OutboxMessage) -> BaseException | None:
        attempts.append(time.monotonic())
        return ConnectionRefusedError("broker says no") if refusing else None

    publisher = InMemoryPublisher(fail=fail)
    relay = OutboxRelay(outbox, publisher, batch_size=10, listen=False)
    assert await relay.run_once() == 4
    assert await relay.run_once() == 0  # backing off, not immediately
    await drain(relay)
    assert relay.metrics.failed == 12 and relay.metrics.dead == 4
    dead = await outbox.dead_letters()
    assert sorted(m.message_id for m in dead) == sorted(ids)
    assert all(m.retry_count == 3 and "broker says no" in (m.error or "") for m in dead)
    assert publisher.published == []

    refusing = False
    assert await outbox.requeue(ids[:2]) == 2
    await drain(relay)
    assert sorted(publisher.ids) == sorted(ids[:2])
    assert await outbox.requeue() == 2
    await drain(relay)
    assert sorted(publisher.ids) == sorted(ids)
    assert await outbox.dead_letters() == []


async def test_publish_timeout_counts_as_failure(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables, max_attempts=2)
    await save(outbox, session_factory, 1)
    hung = InMemoryPublisher(delay=5.0)
    relay = OutboxRelay(outbox, hung, listen=False, publish_timeout=0.1)
    await relay.run_once()
    assert relay.metrics.failed == 1
    await asyncio.sleep(0.2)
    await relay.run_once()
    [dead] = await outbox.dead_letters()
    assert "TimeoutError" in (dead.error or "")


async def test_stop_finishes_the_batch_in_flight(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables)
    await save(outbox, session_factory, 10)
    started = asyncio.Event()

    async def on_publish(_m: OutboxMessage) -> None:
        started.set()

    publisher = InMemoryPublisher(delay=0.05, on_publish=on_publish)
    relay = OutboxRelay(outbox, publisher, batch_size=10, max_in_flight=1, listen=False)
    task = asyncio.create_task(relay.run())
    await started.wait()
    relay.stop()
    await asyncio.wait_for(task, 5)
    assert len(publisher.published) == 10
    assert (await outbox.stats()).done == 10


async def test_cancellation_releases_unpublished_messages(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables, lease_seconds=60)
    await save(outbox, session_factory, 10)
    third = asyncio.Event()

    async def on_publish(_m: OutboxMessage) -> None:
        if len(publisher.published) >= 3:
            third.set()

    publisher = InMemoryPublisher(delay=0.05, on_publish=on_publish)
    relay = OutboxRelay(outbox, publisher, batch_size=10, max_in_flight=1, listen=False)
    task = asyncio.create_task(relay.run())
    await asyncio.wait_for(third.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    published = len(publisher.published)
    stats = await outbox.stats()
    assert stats.done == published and stats.leased == 0
    assert stats.pending == 10 - published  # released at once, not after the 60 s lease
    rest = await outbox.get_pending(limit=20)
    assert len(rest) == 10 - published


async def test_logging_publisher(
    library_tables: AsyncEngine,
    session_factory: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = fast_outbox(library_tables)
    [mid] = await save(outbox, session_factory, 1)
    caplog.set_level("INFO", logger="cqrs_ddd.outbox.published")
    await OutboxRelay(outbox, LoggingPublisher(), listen=False).run_once()
    assert mid in caplog.text and "Tick" in caplog.text


@pytest.mark.postgres_only
async def test_notify_wakes_an_idle_relay(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables)
    publisher = InMemoryPublisher()
    relay = OutboxRelay(outbox, publisher, poll_interval=30.0, listen=True)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.5)  # idle: claimed nothing, now waiting up to 30 s
    started = time.monotonic()
    [mid] = await save(outbox, session_factory, 1)
    while not publisher.published:
        await asyncio.sleep(0.01)
        assert time.monotonic() - started < 5, "NOTIFY did not wake the relay"
    assert publisher.ids == [mid]
    relay.stop()
    await asyncio.wait_for(task, 5)


async def test_polling_without_listen(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = fast_outbox(library_tables, notify=False)
    publisher = InMemoryPublisher()
    relay = OutboxRelay(outbox, publisher, poll_interval=0.05, listen=False)
    task = asyncio.create_task(relay.run())
    [mid] = await save(outbox, session_factory, 1)
    for _ in range(200):
        if publisher.published:
            break
        await asyncio.sleep(0.02)
    relay.stop()
    await asyncio.wait_for(task, 5)
    assert publisher.ids == [mid]
