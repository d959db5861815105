"""Aggregates with child tables, embedded and JSON value objects; bounded query counts."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from repo_helpers import count_queries
from repo_helpers import rich_order as _order
from repo_helpers import rich_repo as _repo
from repo_models import Kind, Money, OrderLine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import set_fast_path


async def test_rich_aggregate_round_trips(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = _repo()
    order = _order()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(order, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get(order.id, uow=uow)
    assert loaded is not None
    assert loaded.model_dump(exclude={"created_at"}) == order.model_dump(exclude={"created_at"})
    assert loaded.kind is Kind.WHOLESALE and isinstance(loaded.id, uuid.UUID)
    assert loaded.placed_at.tzinfo is not None and loaded.placed_at == order.placed_at
    assert loaded.budget == Money(amount=Decimal("100.50"), currency="EUR")
    assert loaded.created_at is not None and loaded.created_at.tzinfo is not None
    assert loaded.version == 1

    # change the children: drop one, reorder, add one; the value objects too
    loaded.lines = [loaded.lines[2], OrderLine(id="new", sku="x", qty=9, price=Decimal("1"))]
    loaded.shipping = None
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(loaded, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        again = await repo.get(order.id, uow=uow)
    assert again is not None and again.version == 2
    assert [line.id for line in again.lines] == ["l2", "new"]
    assert again.shipping is None

    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.delete(again, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert await repo.get(order.id, uow=uow) is None


async def test_stale_child_update_leaves_children_untouched(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = _repo()
    order = _order()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(order, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        stale = await repo.get(order.id, uow=uow)
    order.lines = []
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(order, uow=uow)
        await uow.commit()
    assert stale is not None
    stale.lines.append(OrderLine(id="zz", sku="z", qty=1, price=Decimal(1)))
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with pytest.raises(OptimisticConcurrencyError):
            await repo.add(stale, uow=uow)
        # the transaction is still usable after the conflict
        current = await repo.get(order.id, uow=uow)
        assert current is not None and current.lines == [] and current.version == 2


@pytest.mark.parametrize("how", ["search", "get_many", "stream"])
async def test_loading_aggregates_with_children_is_constant_queries(
    repo_engine: AsyncEngine, how: str
) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = _repo()
    orders = [_order(i) for i in range(100)]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for order in orders:
            await repo.add(order, uow=uow)
        await uow.commit()

    async def load(ids: list[uuid.UUID]) -> tuple[int, int]:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            with count_queries(repo_engine) as statements:
                if how == "search":
                    spec = {"op": "in", "attr": "id", "val": [str(i) for i in ids]}
                    found = await repo.search(spec, uow=uow)
                elif how == "get_many":
                    found = await repo.get_many(ids, uow=uow)
                else:
                    found = [o async for o in repo.search(uow=uow).stream(batch_size=500)]
        assert all(len(o.lines) == 3 for o in found)
        return len(found), len(statements)

    few = await load([o.id for o in orders[:5]])
    many = await load([o.id for o in orders])
    if how == "stream":
        assert many == (100, 2)
    else:
        assert few == (5, 2) and many == (100, 2)


async def test_ids_of_the_wrong_type_find_nothing(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = _repo()
    order = _order()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(order, uow=uow)
        assert await repo.get("not-a-uuid", uow=uow) is None
        assert await repo.exists("not-a-uuid", uow=uow) is False
        assert await repo.get(str(order.id), uow=uow) == order  # a UUID's text is fine
        assert await repo.get_many(["x", order.id], uow=uow) == [order]
        await repo.delete("not-a-uuid", uow=uow)
        await uow.commit()


async def test_writes_are_single_statements(repo_engine: AsyncEngine) -> None:
    from repo_models import ContractOrderModel

    from cqrs_ddd_core.testing import ContractOrder

    # Every statement through SQLAlchemy, where the recorder sees it (the asyncpg fast path
    # sends the kept UPDATE on the driver).
    set_fast_path(repo_engine, False)
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
    order = ContractOrder(id="one", customer_id="c", total=Decimal(1))
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with count_queries(repo_engine) as inserts:
            await repo.add(order, uow=uow)  # held for the unit of work's batch
            await uow.commit()
    order.status = "paid"
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with count_queries(repo_engine) as updates:
            await repo.add(order, uow=uow)
        await uow.commit()
    assert len(inserts) == 1 and "INSERT" in inserts[0] and "ON CONFLICT" in inserts[0]
    assert len(updates) == 1 and "UPDATE" in updates[0]
    assert "version = " in updates[0].split("WHERE", 1)[1]
