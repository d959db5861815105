"""JSON and timestamp round trips, error translation and the unit of work on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Integer, String, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core import DomainEvent
from cqrs_ddd_core.errors import (
    ConfigurationError,
    DataError,
    MissingSchemaError,
    UniqueViolationError,
    UnitOfWorkError,
)
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.binding import Binding as SessionSource
from cqrs_ddd_persistence_sqlalchemy.core import current_uow
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "foundation_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc: Mapped[Any] = mapped_column(JSONType(), nullable=True)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    name: Mapped[str | None] = mapped_column(String(50), unique=True)


class PaymentTaken(DomainEvent):
    payment_id: UUID
    amount: Decimal
    taken_at: datetime


@pytest.fixture
async def tables(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine


async def test_domain_event_round_trips_through_json_column(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    event = PaymentTaken(
        payment_id=uuid4(),
        amount=Decimal("1234.5678901234567890"),
        taken_at=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        aggregate_id="order-1",
        metadata={"nested": {"when": datetime(2020, 1, 1, tzinfo=UTC)}},
    )
    # Untyped metadata keeps JSON types (ISO strings); typed fields come back as their types.
    async with session_factory() as session, session.begin():
        session.add(Row(id=1, doc=event.model_dump()))
    async with session_factory() as session:
        doc = (await session.execute(select(Row.doc))).scalar_one()
    back = PaymentTaken.model_validate(doc)
    assert back.model_dump(exclude={"metadata"}) == event.model_dump(exclude={"metadata"})
    assert back.metadata == {"nested": {"when": "2020-01-01T00:00:00+00:00"}}
    assert isinstance(back.payment_id, UUID) and isinstance(back.amount, Decimal)
    assert back.amount == Decimal("1234.5678901234567890")
    assert back.taken_at.tzinfo is not None


async def test_timestamps_are_aware_and_timestamptz(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], dialect_name: str
) -> None:
    at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    async with session_factory() as session, session.begin():
        session.add(Row(id=1, at=at))
    async with session_factory() as session:
        if dialect_name == "postgresql":
            # Returned in UTC whatever the session's zone (asyncpg decodes timestamptz to UTC;
            # UTCDateTime relies on that and skips its per-row conversion there).
            await session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        back = (await session.execute(select(Row.at))).scalar_one()
        assert back == at and back.tzinfo is not None
        assert back.utcoffset() == timedelta(0)
        if dialect_name == "postgresql":
            coltype = (
                await session.execute(
                    text(
                        "SELECT data_type FROM information_schema.columns "
                        "WHERE table_name = 'foundation_rows' AND column_name = 'at' "
                        "AND table_schema = current_schema()"
                    )
                )
            ).scalar_one()
            assert coltype == "timestamp with time zone"
    with pytest.raises(DataError, match="naive"):
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            uow.session.add(Row(id=2, at=datetime(2024, 1, 1)))
            await uow.commit()


async def test_uow_rolls_back_unless_committed(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        uow.session.add(Row(id=1))
    async with SQLAlchemyUnitOfWork(session_factory=session_factory) as uow:
        assert (await uow.session.execute(select(Row))).first() is None
        uow.session.add(Row(id=2))
        await uow.commit()
        # usable after commit: a new transaction begins
        uow.session.add(Row(id=3))
        await uow.commit()
    async with session_factory() as session:
        assert sorted((await session.execute(select(Row.id))).scalars()) == [2, 3]


async def test_uow_is_ambient_and_hooks_run(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    calls: list[str] = []
    assert current_uow() is None
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        assert current_uow() is uow
        uow.after_commit(lambda: calls.append("sync"))

        async def hook() -> None:
            calls.append("async")

        uow.after_commit(hook)
        await uow.commit()
        uow.after_commit(lambda: calls.append("never"))
    assert current_uow() is None
    assert calls == ["sync", "async"]


async def test_uow_translates_commit_errors_and_stays_usable(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        uow.session.add(Row(id=1, name="a"))
        await uow.commit()
        uow.session.add(Row(id=2, name="a"))
        with pytest.raises(UniqueViolationError):
            await uow.commit()
        uow.session.add(Row(id=3, name="b"))
        await uow.commit()


async def test_session_source_modes(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    source = SessionSource(session_factory)
    async with source.session() as session:  # own transaction, committed
        session.add(Row(id=10))
    async with session_factory() as session:
        assert (await session.get(Row, 10)) is not None
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        async with source.session() as session:
            assert session is uow.session
            session.add(Row(id=11))
        # not committed by the store
    async with session_factory() as session:
        assert (await session.get(Row, 11)) is None
    with pytest.raises(UnitOfWorkError):
        async with SessionSource().session():
            pass
    with pytest.raises(ConfigurationError):
        SessionSource(42)  # type: ignore[arg-type]


async def test_missing_table_is_a_library_error(engine: AsyncEngine) -> None:
    source = SessionSource(engine)
    with pytest.raises(MissingSchemaError):
        async with source.session() as session:
            await session.execute(select(Row))


@pytest.mark.parametrize("value", ["ok", "123", 123, 1.5, True, [1, "2"], {"a": None}])
async def test_json_column_round_trips_top_level_scalars(
    tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], value: Any
) -> None:
    async with session_factory() as session, session.begin():
        session.add(Row(id=1, doc=value))
    async with session_factory() as session:
        back = (await session.execute(select(Row.doc))).scalar_one()
    assert back == value
    assert type(back) is type(value)
