"""SQLAlchemyOutboxStorage beyond the contract: the seed's usage, field round trip, stats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
    outbox_table,
)
from cqrs_ddd_persistence_sqlalchemy.queue import DONE, PENDING

SessionFactory = async_sessionmaker[AsyncSession]


async def test_seed_usage_with_a_session_and_two_background_publishers(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    """The seed README's outbox section, with two copies of its publisher loop at once."""
    async with session_factory() as session:
        outbox = SQLAlchemyOutboxStorage(session)
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await outbox.save_messages(
                [
                    OutboxMessage(message_id=f"e-{i}", event_type="OrderShipped", payload={"i": i})
                    for i in range(40)
                ],
                uow=uow,
            )
            await uow.commit()

    sent: list[str] = []

    async def outbox_publisher() -> None:
        async with session_factory() as session:
            outbox = SQLAlchemyOutboxStorage(session)  # SQLAlchemyOutboxStorage(session)
            while messages := await outbox.get_pending(limit=7):
                for msg in messages:
                    sent.append(msg.message_id)  # kafka_producer.send(...)
                    await asyncio.sleep(0)
                    await outbox.mark_published([msg.message_id])

    await asyncio.gather(outbox_publisher(), outbox_publisher())
    assert sorted(sent) == sorted(f"e-{i}" for i in range(40))
    async with library_tables.connect() as conn:
        done = await conn.scalar(
            select(func.count()).where(outbox_table.c.status == DONE)  # committed, not lost
        )
    assert done == 40


async def test_save_with_a_bare_session_joins_its_transaction(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    kept = OutboxMessage(event_type="Kept")
    async with session_factory() as session:
        outbox = SQLAlchemyOutboxStorage(session)
        await outbox.save_messages([OutboxMessage(event_type="RolledBack")])
        await session.rollback()
        await outbox.save_messages([kept])
        await session.commit()
    pending = await SQLAlchemyOutboxStorage(library_tables).get_pending()
    assert [m.message_id for m in pending] == [kept.message_id]


async def test_every_field_round_trips(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    outbox = SQLAlchemyOutboxStorage(library_tables)
    created = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    original = OutboxMessage(
        event_type="OrderPlaced",
        payload={"nested": {"list": [1, "two", None]}, "flag": True},
        metadata={"user": "u-1"},
        created_at=created,
        correlation_id="corr",
        causation_id="cause",
        tenant_id="tenant",
        partition_key="order-7",
    )
    await outbox.save_messages([original])
    [loaded] = await outbox.get_pending()
    assert loaded == original


async def test_stats_report_lag_of_the_oldest_due_message(
    library_tables: AsyncEngine,
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    outbox = SQLAlchemyOutboxStorage(library_tables, clock=lambda: clock[0])
    await outbox.save_messages([OutboxMessage(event_type="A"), OutboxMessage(event_type="B")])
    clock[0] = now + timedelta(seconds=42)
    stats = await outbox.stats()
    assert stats.pending == 2 and stats.lag_seconds == 42.0
    await outbox.claim(1)
    stats = await outbox.stats()
    assert stats.leased == 1 and stats.lag_seconds == 42.0


async def test_messages_saved_together_in_a_unit_of_work(
    library_tables: AsyncEngine, session_factory: SessionFactory
) -> None:
    """Several messages in one unit of work are one statement over their rows (on asyncpg an
    ``executemany`` on the driver): every field and default written; a message id already
    stored skipped; a bad row fails the save with a library error and nothing is written."""
    outbox = SQLAlchemyOutboxStorage(library_tables)
    first = OutboxMessage(event_type="A", payload={"n": 1}, partition_key="k")
    second = OutboxMessage(event_type="B", metadata={"m": "x"}, tenant_id="t")
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await SQLAlchemyOutboxStorage(uow.session).save_messages([first, second])
        await SQLAlchemyOutboxStorage(uow.session).save_messages([second, first])  # skipped
        await uow.commit()
    if library_tables.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR(255)
        with pytest.raises(CQRSDDDError):
            async with SQLAlchemyUnitOfWork(session_factory) as uow:
                await outbox.save_messages(
                    [OutboxMessage(event_type="C"), OutboxMessage(event_type="x" * 300)]
                )
                await uow.commit()
    async with library_tables.connect() as conn:
        rows = (await conn.execute(select(outbox_table.c.status, outbox_table.c.attempts))).all()
    assert [tuple(r) for r in rows] == [(PENDING, 0), (PENDING, 0)]
    pending = await outbox.get_pending()
    assert sorted(pending, key=lambda m: m.event_type) == [first, second]
