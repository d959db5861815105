"""``SQLAlchemyRepository(Order, OrderModel, bind)``: every store takes its bind positionally,
so a bind in the mapper's place is the bind (engine, sessionmaker, session, unit of work or a
factory of units of work), on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from repo_models import ContractOrderModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy.core import (
    ModelMapper,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)

KINDS = ["engine", "sessionmaker", "session", "uow", "uow factory"]


def _order(kind: str) -> ContractOrder:
    return ContractOrder(id=f"o-{kind}", customer_id="c", total=Decimal("9.50"))


@pytest.mark.parametrize("kind", KINDS)
async def test_repo_third_argument_is_the_bind(repo_engine: AsyncEngine, kind: str) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    order = _order(kind)
    if kind in ("engine", "sessionmaker", "uow factory"):
        bind: Any = {
            "engine": repo_engine,
            "sessionmaker": factory,
            "uow factory": lambda: SQLAlchemyUnitOfWork(factory),
        }[kind]
        repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind)
        await repo.add(order)  # no unit of work: a short transaction of its own
        assert order.version == 1
    elif kind == "session":
        async with factory() as session:
            repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, session)
            await repo.add(order)  # joins the session's transaction: the caller commits
            await session.commit()
    else:
        uow = SQLAlchemyUnitOfWork(factory)
        repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, uow)
        async with uow:
            await repo.add(order)  # joins the unit of work it was built with
            await uow.commit()
        assert order.version == 1
    assert isinstance(repo.mapper, ModelMapper)  # the automatic mapper, not the bind
    reader = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=repo_engine)
    stored = await reader.get(order.id)
    assert stored is not None and stored.total == Decimal("9.50") and stored.version == 1


async def test_repo_mapper_and_bind_both_positional(repo_engine: AsyncEngine) -> None:
    mapper = ModelMapper(ContractOrder, ContractOrderModel)
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, mapper, bind=repo_engine)
    assert repo.mapper is mapper
    await repo.add(_order("mapper"))
    assert await repo.exists("o-mapper")


@pytest.mark.parametrize(
    "third", ["sqlite+aiosqlite://", 42, dict, object()], ids=["url", "int", "class", "object"]
)
def test_repo_third_argument_neither_mapper_nor_bind_is_refused(third: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        SQLAlchemyRepository(ContractOrder, ContractOrderModel, third)
    message = str(info.value)
    assert type(third).__name__ in message
    assert "ModelMapper" in message and "AsyncEngine" in message


async def test_repo_bind_given_twice_is_refused(repo_engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        SQLAlchemyRepository(ContractOrder, ContractOrderModel, repo_engine, bind=repo_engine)
