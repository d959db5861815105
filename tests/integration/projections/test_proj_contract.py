"""The in-memory projection store and the SQL one agree on the same operations."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import (
    DocumentWrite,
    FieldType,
    InMemoryProjectionStore,
    ProjectionField,
    ProjectionSchema,
)
from cqrs_ddd_core.errors import MappingError
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
from cqrs_ddd_specifications import QueryOptions

SCHEMA = ProjectionSchema(
    [ProjectionField("sku", primary_key=True), ProjectionField("qty", FieldType.INTEGER)]
)


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest, session_factory: async_sessionmaker[AsyncSession]) -> Any:
    if request.param == "memory":
        return InMemoryProjectionStore(schemas={"stock": SCHEMA})
    return SQLAlchemyProjectionStore(session_factory, schemas={"stock": SCHEMA})


async def test_same_guards_and_shapes(store: Any) -> None:
    assert await store.upsert("docs", "a", {"n": 1, "_version": 2})
    assert not await store.upsert("docs", "a", {"n": 0}, version=2)
    assert await store.upsert("docs", "a", {"n": 3}, version=5)
    assert await store.upsert("docs", "b", {"n": 1}, event_id="e1", position=4)
    assert not await store.upsert("docs", "b", {"n": 9}, event_id="e1", position=4)
    assert await store.upsert("docs", "b", {"n": 2}, event_id="e2", position=6)
    assert await store.get("docs", "a") == {
        "n": 3,
        "_id": "a",
        "_version": 5,
        "_last_event_id": None,
        "_last_position": None,
    }
    assert await store.get("docs", "b") == {
        "n": 2,
        "_id": "b",
        "_version": 2,
        "_last_event_id": "e2",
        "_last_position": 6,
    }
    written = await store.upsert_many(
        "docs", [DocumentWrite(doc_id=f"c{i}", doc={"n": i}) for i in range(5)]
    )
    assert written == 5
    found = await store.find(
        "docs", {"op": "gte", "attr": "n", "val": 2}, QueryOptions(order_by=("-id",), limit=3)
    )
    assert [d["_id"] for d in found] == ["c4", "c3", "c2"]
    assert await store.count("docs", {"op": "eq", "attr": "_version", "val": 1}) == 5
    assert (await store.find_one("docs", spec={"op": "eq", "attr": "n", "val": 3}))["_id"] in {
        "a",
        "c3",
    }
    assert await store.delete("docs", "a")
    assert not await store.delete("docs", "a")
    assert set(await store.get_many("docs", ["a", "b", "c1"])) == {"b", "c1"}
    await store.truncate("docs")
    assert await store.count("docs") == 0


async def test_same_typed_rows(store: Any) -> None:
    await store.ensure_collection("stock", schema=SCHEMA)
    assert await store.upsert("stock", "sku-1", {"qty": 3})
    assert await store.get("stock", "sku-1") == {
        "sku": "sku-1",
        "qty": 3,
        "_version": 1,
        "_last_event_id": None,
        "_last_position": None,
    }
    with pytest.raises(MappingError):
        await store.upsert("stock", "sku-1", {"quantity": 3})
    rows = await store.find("stock", {"op": "gt", "attr": "qty", "val": 1})
    assert [r["sku"] for r in rows] == ["sku-1"]
