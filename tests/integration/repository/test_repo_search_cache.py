"""Repository searches are built for the session's dialect: a second search of the same shape
(other values) reuses SQLAlchemy's compiled statement, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from repo_models import ContractOrderModel
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import (
    ConfigurationError,
    FieldNotFoundError,
    InvalidValueError,
    OperatorNotFoundError,
)
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder


@contextmanager
def cache_stats(engine: AsyncEngine, table: str) -> Iterator[list[str]]:
    """The compiled-cache outcome (``CACHE_HIT``, ``CACHE_MISS``, ``NO_CACHE_KEY`` ...) of each
    statement on ``table`` executed inside the block."""
    seen: list[str] = []

    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if table in statement:
            seen.append(context.cache_hit.name)

    event.listen(engine.sync_engine, "after_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", record)


@pytest.fixture
async def seeded(repo_engine: AsyncEngine) -> AsyncEngine:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=repo_engine)
    for i in range(12):
        await repo.add(
            ContractOrder(
                id=f"o{i:02d}",
                customer_id=f"cust-{i % 3}",
                total=Decimal(i),
                status=["paid", "pending"][i % 2],
            )
        )
    return repo_engine


def _spec(status: str, prefix: str, total: int) -> Any:
    # startswith is dialect-specific (GLOB on SQLite): without the dialect it used to make the
    # whole statement uncacheable
    return (
        SpecificationBuilder()
        .where("status", "eq", status)
        .and_where("customer_id", "startswith", prefix)
        .and_where("total", "gte", total)
        .build()
    )


async def test_repo_searches_of_one_shape_hit_the_compiled_cache(seeded: AsyncEngine) -> None:
    factory = async_sessionmaker(seeded, expire_on_commit=False)
    binds: list[Any] = [seeded, factory]
    options = QueryOptions(order_by=["-total"], limit=3)
    for bind in binds:
        repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=bind)
        with cache_stats(seeded, "contract_orders") as seen:
            first = await repo.search(_spec("paid", "cust-1", 0), options)
            second = await repo.search(_spec("pending", "cust-2", 3), options)
            counted = await repo.search(_spec("paid", "cust-0", 1)).count()
            again = await repo.search(_spec("pending", "cust-0", 2)).count()
        assert [o.id for o in first] == ["o10", "o04"]
        assert [o.id for o in second] == ["o11", "o05"]
        assert (counted, again) == (1, 2)
        assert "NO_CACHE_KEY" not in seen
        assert seen[1] == "CACHE_HIT" and seen[3] == "CACHE_HIT"


async def test_repo_search_in_a_unit_of_work_is_cacheable(seeded: AsyncEngine) -> None:
    factory = async_sessionmaker(seeded, expire_on_commit=False)
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)  # no bind: the UoW decides
    with cache_stats(seeded, "contract_orders") as seen:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            assert len(await repo.search(_spec("paid", "cust", 0), uow=uow)) == 6
            assert len(await repo.search(_spec("pending", "cust-1", 0))) == 2  # ambient UoW
    assert seen[-1] == "CACHE_HIT"
    assert "NO_CACHE_KEY" not in seen


async def test_repo_search_consumed_on_another_dialect_is_refused(
    seeded: AsyncEngine, tmp_path: Any
) -> None:
    from cqrs_ddd_persistence_sqlalchemy import create_engine

    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    if seeded.dialect.name == other.dialect.name:
        await other.dispose()
        pytest.skip("needs two dialects")
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=seeded)
    pending = repo.search(_spec("paid", "cust", 0))  # built for PostgreSQL, consumed on SQLite
    try:
        async with SQLAlchemyUnitOfWork(async_sessionmaker(other)):
            with pytest.raises(ConfigurationError):
                await pending
    finally:
        await other.dispose()


async def test_repo_hostile_searches_still_raise_library_errors(seeded: AsyncEngine) -> None:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=seeded)
    for _ in range(2):  # the second time after the first one may have cached something
        with pytest.raises(FieldNotFoundError):
            repo.search({"op": "=", "attr": "status; DROP TABLE contract_orders", "val": 1})
        with pytest.raises(OperatorNotFoundError):
            repo.search({"op": "'; --", "attr": "status", "val": 1})
        with pytest.raises(InvalidValueError):
            repo.search({"op": "gt", "attr": "total", "val": "1 OR 1=1"})
        with pytest.raises(FieldNotFoundError):
            repo.search(None, QueryOptions(order_by=["total; DROP TABLE x"]))
    found = await repo.search({"op": "=", "attr": "status", "val": "x' OR '1'='1"})
    assert found == []
    assert await repo.search(None).count() == 12  # nothing was changed
