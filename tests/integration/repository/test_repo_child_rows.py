"""Saving a loaded aggregate writes only the child rows that changed
(repository/child_rows.py), and falls back to rewriting them whenever the rows remembered might
not be the database's."""

from __future__ import annotations

from decimal import Decimal

from repo_helpers import count_queries, rich_order, rich_repo
from repo_models import Basket, BasketItem, BasketItemModel, BasketModel, OrderLine, RichOrder
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork


def _kinds(statements: list[str]) -> list[str]:
    """``TABLE:VERB`` of every write, in order (the reads of a save are none)."""
    out = []
    for sql in statements:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb == "SELECT":
            continue
        table = "lines" if "rich_order_lines" in sql else "orders"
        out.append(f"{table}:{verb}")
    return out


async def _stored(factory: async_sessionmaker, order: RichOrder) -> RichOrder:  # type: ignore[type-arg]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        found = await rich_repo().get(order.id, uow=uow)
    assert found is not None
    return found


async def _saved(factory: async_sessionmaker, lines: int = 10) -> RichOrder:  # type: ignore[type-arg]
    order = rich_order(lines=lines)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await rich_repo().add(order, uow=uow)
        await uow.commit()
    return order


async def test_one_changed_line_is_one_update(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = rich_repo()
    order = await _saved(factory)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get(order.id, uow=uow)
        assert loaded is not None
        loaded.lines[3].qty = 99
        loaded.customer = "someone else"
        with count_queries(repo_engine) as sent:
            await repo.add(loaded, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE", "lines:UPDATE"]
    stored = await _stored(factory, order)
    assert stored.version == 2 and stored.customer == "someone else"
    assert stored.lines == loaded.lines and stored.lines[3].qty == 99


async def test_unchanged_children_are_not_written(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = rich_repo()
    order = await _saved(factory)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get(order.id, uow=uow)
        assert loaded is not None
        loaded.customer = "x"
        with count_queries(repo_engine) as sent:
            await repo.add(loaded, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE"]
    assert (await _stored(factory, order)).lines == order.lines


async def test_removed_moved_and_new_lines_in_one_save(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = rich_repo()
    order = await _saved(factory, lines=5)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get(order.id, uow=uow)
        assert loaded is not None
        # l4 moves to the front, l1 and l3 go, two new lines, l0 keeps its place
        loaded.lines = [
            loaded.lines[4],
            loaded.lines[0],
            OrderLine(id="n1", sku="new-1", qty=1, price=Decimal("9.99")),
            loaded.lines[2],
            OrderLine(id="n2", sku="new-2", qty=2, price=Decimal("0.01")),
        ]
        with count_queries(repo_engine) as sent:
            await repo.add(loaded, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE", "lines:DELETE", "lines:UPDATE", "lines:INSERT"]
    stored = await _stored(factory, order)
    assert [line.id for line in stored.lines] == ["l4", "l0", "n1", "l2", "n2"]
    assert stored.lines == loaded.lines


async def test_two_saves_in_one_unit_of_work(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = rich_repo()
    order = await _saved(factory, lines=3)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get(order.id, uow=uow)
        assert loaded is not None
        loaded.lines[0].qty = 50
        await repo.add(loaded, uow=uow)
        loaded.lines[0].qty = 51  # against the rows the first save wrote
        loaded.lines.pop()
        with count_queries(repo_engine) as sent:
            await repo.add(loaded, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    # the first save's held line UPDATE goes first, before the second save's statements
    assert _kinds(sent) == ["lines:UPDATE", "orders:UPDATE", "lines:DELETE", "lines:UPDATE"]
    stored = await _stored(factory, order)
    assert stored.version == 3 and stored.lines == loaded.lines
    assert [line.qty for line in stored.lines] == [51, 2]


async def test_a_rolled_back_save_is_not_trusted(repo_engine: AsyncEngine) -> None:
    """The change of a save that rolled back is still in the object: the next save must write
    it, so it rewrites the children instead of comparing with what the lost save wrote."""
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = rich_repo()
    order = await _saved(factory, lines=3)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get(order.id, uow=uow)
    assert loaded is not None
    loaded.lines[1].qty = 70
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(loaded, uow=uow)
        await uow.rollback()
    assert loaded.version == 1
    assert (await _stored(factory, order)).lines[1].qty == 2  # the database never saw 70
    loaded.customer = "after the rollback"
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with count_queries(repo_engine) as sent:
            await repo.add(loaded, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE", "lines:DELETE", "lines:INSERT"]
    stored = await _stored(factory, order)
    assert stored.lines[1].qty == 70 and stored.lines == loaded.lines
    # committed now: the save after it compares again
    loaded.lines[2].qty = 71
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with count_queries(repo_engine) as sent:
            await repo.add(loaded, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE", "lines:UPDATE"]
    assert (await _stored(factory, order)).lines[2].qty == 71


async def test_a_new_aggregate_saved_again_compares_with_its_insert(
    repo_engine: AsyncEngine,
) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = rich_repo()
    order = rich_order(lines=2)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(order, uow=uow)
        await uow.commit()
    order.lines.append(OrderLine(id="l9", sku="s", qty=1, price=Decimal(1)))
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with count_queries(repo_engine) as sent:
            await repo.add(order, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE", "lines:INSERT"]
    assert (await _stored(factory, order)).lines == order.lines
    # Rows are remembered per repository: another one (which never saw this object) rewrites.
    order.lines[0].qty = 5
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with count_queries(repo_engine) as sent:
            await rich_repo().add(order, uow=uow)
            await uow.commit()  # the changed child rows are written with the batch
    assert _kinds(sent) == ["orders:UPDATE", "lines:DELETE", "lines:INSERT"]
    assert (await _stored(factory, order)).lines == order.lines


async def test_in_place_changes_of_a_json_child_field_are_written(
    repo_engine: AsyncEngine,
) -> None:
    """A list the child holds (a JSON column) changed in place must not change the rows
    remembered at load along with it."""
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo: SQLAlchemyRepository[Basket] = SQLAlchemyRepository(Basket, BasketModel)
    basket = Basket(id="b1", items=[BasketItem(id="i1", tags=["a"]), BasketItem(id="i2")])
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(basket, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await repo.get("b1", uow=uow)
        assert loaded is not None
        loaded.items[0].tags.append("b")
        await repo.add(loaded, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        again = await repo.get("b1", uow=uow)
    assert again is not None and again.items[0].tags == ["a", "b"]
    # After a save the rows remembered are the ones written, whose lists may be the entity's
    # own objects: changed in place again, they are still written.
    loaded.items[0].tags.append("c")
    loaded.items[1].tags.append("z")
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(loaded, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        third = await repo.get("b1", uow=uow)
    assert third is not None and [i.tags for i in third.items] == [["a", "b", "c"], ["z"]]
    assert BasketItemModel.__tablename__ == "basket_items"
