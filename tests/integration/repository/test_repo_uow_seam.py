"""The repository in a unit of work runs on the unit of work's transaction (the execution seam)
without making its ORM session; the caller's own ORM writes still share that transaction with
the repository's loads and saves — committed together, rolled back together."""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa
from repo_models import Basket, BasketItem, BasketItemModel, BasketModel, Counter, CounterModel
from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.entity import Entity
from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin

SF = async_sessionmaker[AsyncSession]


class SeamBase(DeclarativeBase):
    pass


class Shelf(Entity[str]):
    id: str
    label: str


class Bookcase(AggregateRoot[str]):
    id: str
    room: str
    shelves: list[Shelf] = []


class BookcaseModel(VersionMixin, SeamBase):
    __tablename__ = "seam_bookcases"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The column's name differs from its key: loads read rows by key, on every path.
    room: Mapped[str] = mapped_column("room_name", String(32))
    shelves: Mapped[list[ShelfModel]] = relationship(order_by="ShelfModel.id")


class ShelfModel(SeamBase):
    __tablename__ = "seam_shelves"
    bookcase_id: Mapped[str] = mapped_column(ForeignKey("seam_bookcases.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column("shelf_label", String(32))


@pytest.fixture
async def factory(repo_engine: AsyncEngine) -> SF:
    async with repo_engine.begin() as conn:
        await conn.run_sync(SeamBase.metadata.create_all)
    return async_sessionmaker(repo_engine, expire_on_commit=False)


def no_session(uow: SQLAlchemyUnitOfWork) -> bool:
    return uow._txn is not None and uow._txn._session is None


async def ids(factory: SF, model: type[object]) -> list[str]:
    async with factory() as session:
        return list((await session.execute(sa.select(model.id).order_by(model.id))).scalars())  # type: ignore[attr-defined]


async def test_load_change_save_without_a_session(factory: SF) -> None:
    repo = SQLAlchemyRepository(Bookcase, BookcaseModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        case = Bookcase(id="b1", room="hall", shelves=[Shelf(id="s1", label="top")])
        await repo.add(case)
        await uow.commit()
        loaded = await repo.get("b1")
        assert loaded is not None and loaded.room == "hall" and loaded.version == 1
        assert [(s.id, s.label) for s in loaded.shelves] == [("s1", "top")]
        loaded.room = "study"
        loaded.shelves[0].label = "upper"
        loaded.shelves.append(Shelf(id="s2", label="low"))
        await repo.add(loaded)
        assert await repo.exists("b1")
        assert [c.id for c in await repo.get_many(["b1", "nope"])] == ["b1"]
        assert no_session(uow)
        await uow.commit()
    assert loaded.version == 2
    async with SQLAlchemyUnitOfWork(factory) as uow:
        again = await repo.get("b1")
        assert no_session(uow)
    assert again is not None and again.room == "study" and again.version == 2
    assert [(s.id, s.label) for s in again.shelves] == [("s1", "upper"), ("s2", "low")]


async def test_a_stale_save_still_conflicts_and_the_transaction_stays_usable(factory: SF) -> None:
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="stale"))
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        mine = await repo.get("stale")
    async with SQLAlchemyUnitOfWork(factory) as other:
        theirs = await repo.get("stale")
        assert theirs is not None
        theirs.value = 7
        await repo.add(theirs)
        await other.commit()
    assert mine is not None
    async with SQLAlchemyUnitOfWork(factory) as uow:
        mine.value = 1
        with pytest.raises(OptimisticConcurrencyError):
            await repo.add(mine)
        fresh = await repo.get("stale")
        assert fresh is not None and fresh.value == 7
        fresh.value = 8
        await repo.add(fresh)
        assert no_session(uow)
        await uow.commit()
    assert fresh.version == 3


@pytest.mark.parametrize("orm_first", [True, False], ids=["orm-first", "repository-first"])
@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_orm_writes_and_repository_writes_share_the_transaction(
    factory: SF, orm_first: bool, commit: bool
) -> None:
    repo = SQLAlchemyRepository(Basket, BasketModel)
    counters = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await counters.add(Counter(id="shared", value=1))
        await uow.commit()

    class Boom(Exception):
        pass

    async def orm_part(uow: SQLAlchemyUnitOfWork) -> None:
        uow.session.add(BasketModel(id="orm", version=1))
        uow.session.add(BasketItemModel(basket_id="orm", id="i", tags=[]))
        await uow.session.flush()

    async def repository_part() -> None:
        await repo.add(Basket(id="lib", items=[BasketItem(id="i", tags=["t"])]))
        counter = await counters.get("shared")
        assert counter is not None
        counter.value += 1
        await counters.add(counter)

    with pytest.raises(Boom) if not commit else contextlib.nullcontext():
        async with SQLAlchemyUnitOfWork(factory) as uow:
            if orm_first:
                await orm_part(uow)
                # The repository sees what the caller's session flushed, and the other way.
                seen = await repo.get("orm")
                assert seen is not None and [i.id for i in seen.items] == ["i"]
                await repository_part()
            else:
                await repository_part()
                await orm_part(uow)
            assert await uow.session.get(BasketModel, "lib") is not None
            model = await uow.session.get(CounterModel, "shared")
            assert model is not None and model.value == 2
            if not commit:
                raise Boom
            await uow.commit()
    expected = ["lib", "orm"] if commit else []
    assert await ids(factory, BasketModel) == expected
    assert len(await ids(factory, BasketItemModel)) == len(expected)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        counter = await counters.get("shared")
    assert counter is not None and counter.value == (2 if commit else 1)
