"""``search`` compiles to exactly the SQL one would write by hand (no Python filtering)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from repo_models import ContractOrderModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy.core import (
    ResultList,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder

T = ContractOrderModel.__table__


@pytest.fixture
async def seeded(repo_engine: AsyncEngine) -> AsyncEngine:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for i in range(60):
            await repo.add(
                ContractOrder(
                    id=f"o{i:03d}",
                    customer_id=f"c{i % 4}",
                    total=Decimal(i % 7) + Decimal("0.5"),
                    status=["paid", "pending", "cancelled"][i % 3],
                ),
                uow=uow,
            )
        await uow.commit()
    return repo_engine


async def _sql_ids(engine: AsyncEngine, stmt: sa.Select[tuple[str]]) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).scalars())


async def test_not_limit_offset_and_two_field_order_match_sql(seeded: AsyncEngine) -> None:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=seeded)
    paid = SpecificationBuilder().where("status", "eq", "paid").build()
    big = SpecificationBuilder().where("total", "gt", 3).build()
    spec = ~paid & big
    options = QueryOptions(order_by=["-total", "customer_id"], limit=7, offset=3)
    got = [o.id for o in await repo.search(spec, options)]
    expected = await _sql_ids(
        seeded,
        sa.select(T.c.id)
        .where(sa.not_(T.c.status == "paid"), T.c.total > 3)
        .order_by(T.c.total.desc(), T.c.customer_id, T.c.id)
        .limit(7)
        .offset(3),
    )
    assert got == expected and len(got) == 7
    # NOT alone is a specification, not options (seed pitfall)
    negated = await repo.search(~paid)
    assert negated and all(o.status != "paid" for o in negated)
    assert await repo.search(~paid).count() == 40
    assert await repo.search(spec).count() == len(
        await _sql_ids(seeded, sa.select(T.c.id).where(T.c.status != "paid", T.c.total > 3))
    )


async def test_keyset_pages_cover_sql_order_exactly(seeded: AsyncEngine) -> None:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=seeded)
    spec = SpecificationBuilder().where("status", "ne", "cancelled").build()
    options = QueryOptions(order_by=["total", "-customer_id"], limit=9)
    seen: list[str] = []
    pages = 0
    while True:
        page = await repo.search(spec, options)
        assert isinstance(page, ResultList)
        seen.extend(o.id for o in page)
        pages += 1
        if page.next_cursor is None:
            break
        options = options.with_cursor(page.next_cursor)
    expected = await _sql_ids(
        seeded,
        sa.select(T.c.id)
        .where(T.c.status != "cancelled")
        .order_by(T.c.total, T.c.customer_id.desc(), T.c.id),
    )
    assert seen == expected and pages == 5


async def test_result_forms(seeded: AsyncEngine) -> None:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=seeded)
    options = QueryOptions(order_by=["id"])
    result = repo.search(options)  # options alone
    first = await result.first()
    assert first is not None and first.id == "o000"
    assert await result.count() == 60
    streamed = [o.id async for o in result.stream(batch_size=7)]
    assert streamed == [f"o{i:03d}" for i in range(60)]
    # the seed's spellings: await twice, stream after await
    awaited = await (await repo.search(options))
    assert [o.id for o in awaited] == streamed
    assert [o.id async for o in (await repo.search(options)).stream()] == streamed
    assert await repo.search({"op": "eq", "attr": "status", "val": "paid"}).count() == 20
    assert [o.id for o in await repo.search(None, {"order_by": ["-id"], "limit": 1})] == ["o059"]
    with pytest.raises(InvalidSpecificationError):
        repo.search(QueryOptions(select_fields=["id"]))


async def test_filters_on_regex_metacharacters_stay_in_sql(seeded: AsyncEngine) -> None:
    repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel, bind=seeded)
    spec = SpecificationBuilder().where("status", "contains", "(a|[").build()
    assert await repo.search(spec) == []
