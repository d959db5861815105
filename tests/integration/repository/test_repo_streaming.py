"""Streaming 100,000 aggregates keeps memory bounded (server-side cursor, batches)."""

from __future__ import annotations

import gc
import os

import psutil
import pytest
import sqlalchemy as sa
from repo_models import Item, ItemModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder

ROWS = int(os.environ.get("CQRS_STREAM_ROWS", "100000"))
#: allowed peak RSS growth while streaming (loading all rows takes several times this)
LIMIT_MB = 40


@pytest.mark.postgres_only
async def test_streaming_100k_rows_keeps_rss_bounded(repo_engine: AsyncEngine) -> None:
    table = ItemModel.__table__
    # rows made by the server, so that the client's heap is not inflated before the baseline
    series = sa.func.generate_series(0, ROWS - 1).table_valued("i").render_derived(with_types=False)
    async with repo_engine.begin() as conn:
        await conn.execute(
            sa.insert(table).from_select(
                ["id", "n", "name", "version"],
                sa.select(
                    series.c.i,
                    series.c.i % 1000,
                    sa.func.concat("item-", series.c.i),
                    sa.literal(1),
                ),
            )
        )
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Item, ItemModel)
    spec = ~SpecificationBuilder().where("n", "eq", -1).build()
    process = psutil.Process()
    gc.collect()
    baseline = peak = process.memory_info().rss
    seen = total = 0
    async with SQLAlchemyUnitOfWork(factory) as uow:
        async for item in repo.search(spec, QueryOptions(order_by=["id"]), uow=uow).stream(
            batch_size=1000
        ):
            assert item.id == seen
            seen += 1
            total += item.n
            if seen % 5000 == 0:
                peak = max(peak, process.memory_info().rss)
    growth_mb = (peak - baseline) / 2**20
    print(f"streamed {seen} rows, peak RSS growth {growth_mb:.1f} MB")
    assert seen == ROWS
    assert total == sum(i % 1000 for i in range(ROWS))
    assert growth_mb < LIMIT_MB

    # control: the same rows loaded at once do grow the heap far beyond the limit
    async with SQLAlchemyUnitOfWork(factory) as uow:
        everything = await repo.search(spec, uow=uow)
    loaded_mb = (process.memory_info().rss - baseline) / 2**20
    print(f"loading all {len(everything)} rows at once: RSS growth {loaded_mb:.1f} MB")
    assert loaded_mb > LIMIT_MB
