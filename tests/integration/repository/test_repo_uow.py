"""The unit of work around repositories: ambient use, hooks, reuse after commit, ORM flushes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from repo_models import ContractOrderModel, Counter, CounterModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import OptimisticConcurrencyError, UnitOfWorkError
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    current_uow,
)


async def test_ambient_uow_positional_and_keyword_factory(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
    calls: list[str] = []
    for uow in (SQLAlchemyUnitOfWork(factory), SQLAlchemyUnitOfWork(session_factory=factory)):
        order = ContractOrder(id=f"o{len(calls)}", customer_id="c", total=Decimal(1))
        async with uow:
            assert current_uow() is uow
            await repo.add(order)  # no uow=: the ambient one
            uow.after_commit(lambda: calls.append("committed"))
            assert order.version == 0
            await uow.commit()
            assert order.version == 1
            # still usable: a new transaction begins
            order.status = "paid"
            await repo.add(order)
            await uow.commit()
        assert current_uow() is None
        assert order.version == 2
    assert calls == ["committed", "committed"]
    with pytest.raises(UnitOfWorkError):
        await repo.get("o0")  # no UoW, no bind


async def test_same_aggregate_saved_twice_in_one_uow(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Counter, CounterModel)
    counter = Counter(id="twice")
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(counter)
        counter.value = 5
        await repo.add(counter)
        await uow.commit()
    assert counter.version == 2
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get("twice")
    assert loaded is not None and loaded.value == 5 and loaded.version == 2


async def test_orm_stale_flush_is_optimistic_concurrency(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        uow.session.add(CounterModel(id="orm", value=1))
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        model = await uow.session.get(CounterModel, "orm")
        assert model is not None and model.version == 1
        # somebody else bumps the version underneath the loaded instance
        await uow.session.execute(
            sa.update(CounterModel)
            .where(CounterModel.id == "orm")
            .values(version=7)
            .execution_options(synchronize_session=False)
        )
        model.value = 2
        with pytest.raises(OptimisticConcurrencyError):
            await uow.flush()
        await uow.rollback()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        model = await uow.session.get(CounterModel, "orm")
        assert model is not None
        await uow.session.execute(
            sa.update(CounterModel)
            .where(CounterModel.id == "orm")
            .values(version=9)
            .execution_options(synchronize_session=False)
        )
        model.value = 3
        with pytest.raises(OptimisticConcurrencyError):
            await uow.commit()


async def test_repository_bound_to_factory_runs_its_own_transaction(
    repo_engine: AsyncEngine,
) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Counter, CounterModel, bind=factory)
    counter = await repo.add(Counter(id="own"))
    assert counter.version == 1  # committed at once
    assert await repo.exists("own")
    await repo.delete(counter)
    assert not await repo.exists("own")


class RecordingSink:
    """An ``EventSink`` that writes a row per event in the UoW's transaction."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def write_events(self, events: Any, *, uow: SQLAlchemyUnitOfWork) -> None:
        self.batches.append([type(e).__name__ for e in events])
        await uow.session.execute(
            sa.insert(CounterModel.__table__).values(id=f"evt-{len(self.batches)}", value=0)
        )


async def test_saved_aggregates_events_reach_the_sinks_in_the_transaction(
    repo_engine: AsyncEngine,
) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    sink = RecordingSink()
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
    counters = SQLAlchemyRepository(Counter, CounterModel)
    placed = ContractOrder.place("e1", "c", Decimal("3"))
    async with SQLAlchemyUnitOfWork(factory, event_sinks=[sink]) as uow:
        await repo.add(placed)
        await uow.rollback()  # nothing written: the events stay pending
    assert sink.batches == [] and len(placed.pending_events) == 1
    async with SQLAlchemyUnitOfWork(factory, event_sinks=[sink]) as uow:
        await repo.add(placed)
        await uow.commit()
    assert sink.batches == [["ContractOrderPlaced"]] and placed.pending_events == ()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert await counters.exists("evt-1")  # the sink's write committed with the order
