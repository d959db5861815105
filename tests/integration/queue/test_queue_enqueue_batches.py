"""``DurableQueue.enqueue`` of many rows as one statement, on SQLite and PostgreSQL: values the
rows share (sent once on PostgreSQL) and values they do not end up in the right rows; rows of
different columns still go in (one ``executemany``), or fail as a whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, queue_columns, queue_indexes
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.types import JSONType

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def table(engine: AsyncEngine) -> Table:
    t = Table(
        "batch_items",
        MetaData(naming_convention=NAMING_CONVENTION),
        *queue_columns(key_column="group_key"),
        Column("name", String(50), nullable=False),
        Column("body", JSONType(), nullable=True),
        *queue_indexes("batch_items", key_column="group_key"),
    )
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.create_all)
    return t


async def _stored(engine: AsyncEngine, table: Table) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(table).order_by(table.c.id))
        return [dict(r) for r in result.mappings()]


async def test_shared_and_varying_values_land_in_their_rows(
    engine: AsyncEngine, table: Table
) -> None:
    q = DurableQueue(table, engine, clock=lambda: NOW)
    body = {"k": [1, 2]}
    later = NOW + timedelta(seconds=30)
    rows = [
        {"name": "same", "body": body, "group_key": None},
        {"name": "same", "body": body, "group_key": None},
        {"name": "same", "body": None, "group_key": "g"},
    ]
    await q.enqueue(rows)
    await q.enqueue([{"name": f"n{i}", "available_at": later} for i in range(3)])
    stored = await _stored(engine, table)
    assert [r["name"] for r in stored] == ["same", "same", "same", "n0", "n1", "n2"]
    assert [r["body"] for r in stored] == [body, body, None, None, None, None]
    assert [r["group_key"] for r in stored] == [None, None, "g", None, None, None]
    assert [r["available_at"] for r in stored] == [NOW] * 3 + [later] * 3
    assert all(r["created_at"] == NOW and r["status"] == "pending" for r in stored)
    assert all(r["attempts"] == 0 and r["lease_token"] is None for r in stored)


async def test_the_very_same_row_many_times_is_many_rows(engine: AsyncEngine, table: Table) -> None:
    q = DurableQueue(table, engine, clock=lambda: NOW)
    row = {"name": "copy", "body": {"a": 1}}
    await q.enqueue([row] * 4)  # every column shared: still one row per item
    assert [r["name"] for r in await _stored(engine, table)] == ["copy"] * 4


async def test_rows_of_different_columns_go_in_together_or_not_at_all(
    engine: AsyncEngine, table: Table
) -> None:
    q = DurableQueue(table, engine, clock=lambda: NOW)
    await q.enqueue([{"name": "a"}, {"name": "b", "group_key": "g"}])
    assert [r["name"] for r in await _stored(engine, table)] == ["a", "b"]
    with pytest.raises(CQRSDDDError):
        await q.enqueue([{"name": "ok"}, {"name": None}])  # NOT NULL: the batch fails whole
    assert len(await _stored(engine, table)) == 2
