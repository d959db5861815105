"""New aggregates added in one unit of work: one INSERT per table, every guarantee kept."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from repo_helpers import count_queries
from repo_helpers import rich_order as _order
from repo_helpers import rich_repo as _repo
from repo_models import (
    Basket,
    BasketItem,
    BasketItemModel,
    BasketModel,
    ContractOrderModel,
    Counter,
    CounterModel,
    OrderLineModel,
    RichOrderModel,
)
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import set_fast_path

_WRITE = re.compile(r'^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)', re.IGNORECASE)


def _writes(statements: list[str]) -> list[str]:
    """``table:VERB`` of every write sent, in order."""
    found = [_WRITE.match(s) for s in statements]
    return [f"{m.group(2)}:{m.group(1).split()[0].upper()}" for m in found if m is not None]


async def _count(factory: async_sessionmaker[Any], model: Any) -> int:
    async with SQLAlchemyUnitOfWork(factory) as uow:
        return int(await uow.session.scalar(sa.select(sa.func.count()).select_from(model)))


@pytest.fixture
def factory(repo_engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(repo_engine, expire_on_commit=False)


async def test_the_seed_loop_is_one_insert_per_table(
    repo_engine: AsyncEngine, factory: async_sessionmaker[Any]
) -> None:
    repo = _repo()
    orders = [_order(i, lines=3) for i in range(25)]
    with count_queries(repo_engine) as statements:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            for order in orders:
                await repo.add(order, uow=uow)
            assert statements == []  # held until the commit
            await uow.commit()
    assert _writes(statements) == ["rich_orders:INSERT", "rich_order_lines:INSERT"]
    assert all(order.version == 1 for order in orders)
    assert await _count(factory, RichOrderModel) == 25
    assert await _count(factory, OrderLineModel) == 75
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get_many([o.id for o in orders], uow=uow)
    assert [o.model_dump(exclude={"created_at"}) for o in loaded] == [
        o.model_dump(exclude={"created_at"}) for o in orders
    ]


async def test_what_is_written_is_the_aggregate_as_added_and_as_added_again(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    basket = Basket(id="b", items=[BasketItem(id="1")])
    other = Basket(id="o", items=[BasketItem(id="x")])
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(basket, uow=uow)
        await repo.add(other, uow=uow)
        other.items.append(BasketItem(id="not-written"))  # changed after add, not added again
        basket.items.append(BasketItem(id="2", tags=["t"]))
        await repo.add(basket, uow=uow)  # added again: the pending rows are replaced
        await uow.commit()
    assert basket.version == 2 and other.version == 1
    async with SQLAlchemyUnitOfWork(factory) as uow:
        again = await repo.get("b", uow=uow)
        assert again is not None and again.version == 2
        assert [(i.id, i.tags) for i in again.items] == [("1", []), ("2", ["t"])]
        stored_other = await repo.get("o", uow=uow)
        assert stored_other is not None and [i.id for i in stored_other.items] == ["x"]


async def test_a_duplicate_inside_the_batch_is_refused_at_add(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="d", value=1), uow=uow)
        twin = Counter(id="d", value=2)
        with pytest.raises(OptimisticConcurrencyError) as info:
            await repo.add(twin, uow=uow)
        assert info.value.entity_id == "d" and twin.version == 0
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        stored = await repo.get("d", uow=uow)
    assert stored is not None and stored.value == 1


async def test_a_taken_id_names_its_aggregate_and_the_rest_is_written(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Basket(id="taken", items=[BasketItem(id="old")]), uow=uow)
        await uow.commit()
    batch = [Basket(id=f"n{i}", items=[BasketItem(id="i")]) for i in range(3)]
    clash = Basket(id="taken", items=[BasketItem(id="new")])
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for basket in [batch[0], clash, *batch[1:]]:
            await repo.add(basket, uow=uow)
        with pytest.raises(OptimisticConcurrencyError) as info:
            await uow.flush()
        assert info.value.entity_id == "taken"
        assert info.value.expected_version == 0 and info.value.actual_version == 1
        # the transaction goes on: the others were written, children too
        assert len(await repo.get_many([b.id for b in batch], uow=uow)) == 3
        await uow.commit()
    assert clash.version == 0 and all(b.version == 1 for b in batch)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        kept = await repo.get("taken", uow=uow)
        assert kept is not None and [i.id for i in kept.items] == ["old"]
        items = await uow.session.scalar(sa.select(sa.func.count()).select_from(BasketItemModel))
    assert items == 4


async def test_a_taken_id_fails_the_commit_and_nothing_is_kept(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="t1"), uow=uow)
        await uow.commit()
    fresh = Counter(id="t0")
    with pytest.raises(OptimisticConcurrencyError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await repo.add(fresh, uow=uow)
            await repo.add(Counter(id="t1"), uow=uow)
            await uow.commit()
    assert info.value.entity_id == "t1" and fresh.version == 0
    assert await _count(factory, CounterModel) == 1


async def test_events_of_the_batch_are_collected_once_written(
    factory: async_sessionmaker[Any],
) -> None:
    seen: list[list[str]] = []

    class Sink:
        async def write_events(self, events: Any, *, uow: SQLAlchemyUnitOfWork) -> None:
            # the sink runs in the transaction after the batch: the rows are there
            stored = await uow.session.scalar(
                sa.select(sa.func.count()).select_from(ContractOrderModel)
            )
            seen.append([f"{type(e).__name__}:{stored}" for e in events])

    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
    orders = [ContractOrder.place(f"e{i}", "c", Decimal(i)) for i in range(3)]
    async with SQLAlchemyUnitOfWork(factory, event_sinks=[Sink()]) as uow:
        for order in orders:
            await repo.add(order, uow=uow)
        await uow.commit()
    assert seen == [["ContractOrderPlaced:3"] * 3]
    assert all(o.pending_events == () and o.version == 1 for o in orders)


async def test_reads_after_add_see_the_aggregate(factory: async_sessionmaker[Any]) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Basket(id="r1", items=[BasketItem(id="a")]), uow=uow)
        found = await repo.get("r1", uow=uow)
        assert found is not None and [i.id for i in found.items] == ["a"]
        await repo.add(Basket(id="r2"), uow=uow)
        assert await repo.exists("r2", uow=uow)
        await repo.add(Basket(id="r3"), uow=uow)
        assert await repo.search(uow=uow).count() == 3
        # the caller's own statements on the session see it too
        await repo.add(Basket(id="r4"), uow=uow)
        assert await uow.session.get(BasketModel, "r4") is not None
        await repo.add(Basket(id="r5"), uow=uow)
        rows = await uow.session.execute(sa.select(BasketModel.id).order_by(BasketModel.id))
        assert [r[0] for r in rows] == ["r1", "r2", "r3", "r4", "r5"]


async def test_the_callers_orm_writes_after_add_find_the_rows(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        uow.session.add(CounterModel(id="before", value=0, version=1))
        await repo.add(Basket(id="fk"), uow=uow)
        # a child row referencing the held aggregate: flushed by the ORM after the batch
        uow.session.add(BasketItemModel(basket_id="fk", id="orm", tags=[]))
        await uow.flush()
        await repo.add(Basket(id="fk2"), uow=uow)
        await uow.session.execute(
            sa.insert(BasketItemModel.__table__).values(basket_id="fk2", id="core", tags=[])
        )
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        first, second = await repo.get_many(["fk", "fk2"], uow=uow)
    assert [i.id for i in first.items] == ["orm"] and [i.id for i in second.items] == ["core"]


async def test_rollback_and_failed_savepoints_leave_nothing(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Basket(id="gone", items=[BasketItem(id="1")]), uow=uow)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Basket(id="gone2"), uow=uow)
        await uow.rollback()
        await repo.add(Basket(id="kept"), uow=uow)
        with pytest.raises(LookupError):
            async with uow.savepoint():
                await repo.add(Basket(id="in-savepoint"), uow=uow)
                raise LookupError("the block fails")
        async with uow.savepoint():
            await repo.add(Basket(id="in-good-savepoint"), uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        ids = [b.id for b in await repo.list_all(uow=uow)]
    assert ids == ["in-good-savepoint", "kept"]
    assert await _count(factory, BasketItemModel) == 0


async def test_a_loaded_aggregate_is_still_saved_at_once_and_version_checked(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for i in range(3):
            await repo.add(Counter(id=f"u{i}"), uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get_many(["u0", "u1", "u2"], uow=uow)
    async with SQLAlchemyUnitOfWork(factory) as uow:  # somebody else moves u1 on
        other = await repo.get("u1", uow=uow)
        assert other is not None
        other.value = 9
        await repo.add(other, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="u3"), uow=uow)  # held, then written before the updates
        for counter in loaded:
            counter.value += 1
        await repo.add(loaded[0], uow=uow)
        with pytest.raises(OptimisticConcurrencyError) as info:
            await repo.add(loaded[1], uow=uow)
        assert info.value.entity_id == "u1" and info.value.actual_version == 2
        await repo.add(loaded[2], uow=uow)
        await uow.commit()
    assert [c.version for c in loaded] == [2, 1, 2]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        values = {c.id: c.value for c in await repo.list_all(uow=uow)}
    assert values == {"u0": 1, "u1": 9, "u2": 1, "u3": 0}


async def test_loaded_aggregates_saved_together_send_one_child_statement_per_table(
    repo_engine: AsyncEngine, factory: async_sessionmaker[Any]
) -> None:
    set_fast_path(repo_engine, False)  # every statement where the recorder sees it
    repo = _repo()
    orders = [_order(i, lines=3) for i in range(6)]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for order in orders:
            await repo.add(order, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get_many([o.id for o in orders], uow=uow)
    async with SQLAlchemyUnitOfWork(factory) as uow:  # somebody else saves the fourth one
        other = await repo.get(orders[3].id, uow=uow)
        assert other is not None
        other.customer = "elsewhere"
        await repo.add(other, uow=uow)
        await uow.commit()
    with count_queries(repo_engine) as statements:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            for order in loaded:
                order.lines[0].qty += 10
                order.lines.pop()
                if order is loaded[3]:
                    # the conflict is reported at once, naming the aggregate
                    with pytest.raises(OptimisticConcurrencyError) as info:
                        await repo.add(order, uow=uow)
                    assert info.value.entity_id == order.id
                    assert info.value.expected_version == 1 and info.value.actual_version == 2
                    continue
                await repo.add(order, uow=uow)
            await uow.commit()
    # one version-checked UPDATE per aggregate (the conflicting one included), then the
    # changed lines of the five saved: one DELETE and one UPDATE for all of them
    assert _writes(statements) == ["rich_orders:UPDATE"] * 6 + [
        "rich_order_lines:DELETE",
        "rich_order_lines:UPDATE",
    ]
    assert [o.version for o in loaded] == [2, 2, 2, 1, 2, 2]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        stored = await repo.get_many([o.id for o in orders], uow=uow)
    for before, after in zip(loaded, stored, strict=True):
        if before is loaded[3]:
            assert [line.qty for line in after.lines] == [1, 2, 3]
            assert after.customer == "elsewhere"
        else:
            assert [line.qty for line in after.lines] == [11, 2]


async def test_a_session_used_before_the_add_still_sees_it(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        session = uow.session
        assert await session.get(BasketModel, "s1") is None
        await repo.add(Basket(id="s1"), uow=uow)
        assert await session.get(BasketModel, "s1") is not None
        await uow.commit()
