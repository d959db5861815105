"""Projection ``find`` / ``count`` build their filters for the session's dialect: document
fields (JSON paths, dialect-specific) no longer keep the statement out of SQLAlchemy's compiled
cache. Hostile specifications still raise the library's errors and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_advanced_core.projections import FieldType, ProjectionField, ProjectionSchema
from cqrs_ddd_core.errors import (
    FieldNotFoundError,
    InvalidSpecificationError,
    InvalidValueError,
    OperatorNotFoundError,
)
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
from cqrs_ddd_specifications import QueryOptions

SCHEMA = ProjectionSchema(
    [
        ProjectionField("order_id", FieldType.STRING, primary_key=True, length=64),
        ProjectionField("status", FieldType.STRING),
        ProjectionField("total", FieldType.INTEGER),
    ]
)


@contextmanager
def cache_stats(engine: AsyncEngine, table: str) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if table in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(context.cache_hit.name)

    event.listen(engine.sync_engine, "after_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", record)


def _spec(status: str, total: int) -> dict[str, Any]:
    return {
        "op": "and",
        "conditions": [
            {"op": "=", "attr": "status", "val": status},
            {"op": ">=", "attr": "total", "val": total},
            {"op": "startswith", "attr": "status", "val": status[:1]},
        ],
    }


@pytest.fixture
async def store(engine: AsyncEngine) -> SQLAlchemyProjectionStore:
    store = SQLAlchemyProjectionStore(
        async_sessionmaker(engine, expire_on_commit=False), schemas={"typed_orders": SCHEMA}
    )
    for i in range(10):
        doc = {"status": ["open", "shipped"][i % 2], "total": i}
        await store.upsert(collection="doc_orders", doc_id=f"d{i}", doc=doc)
        await store.upsert(
            collection="typed_orders", doc_id=f"t{i}", doc={**doc, "order_id": f"t{i}"}
        )
    return store


@pytest.mark.parametrize("collection", ["doc_orders", "typed_orders"])
async def test_proj_find_and_count_of_one_shape_hit_the_compiled_cache(
    engine: AsyncEngine, store: SQLAlchemyProjectionStore, collection: str
) -> None:
    options = QueryOptions(order_by=["id" if collection == "doc_orders" else "order_id"], limit=3)
    with cache_stats(engine, collection) as seen:
        first = await store.find(collection, _spec("open", 3), options)
        second = await store.find(collection, _spec("shipped", 6), options)
        counts = [await store.count(collection, _spec(s, 2)) for s in ("open", "shipped")]
    key = "_id" if collection == "doc_orders" else "order_id"
    prefix = collection[0]
    assert [d[key] for d in first] == [f"{prefix}4", f"{prefix}6", f"{prefix}8"]
    assert [d[key] for d in second] == [f"{prefix}7", f"{prefix}9"]
    assert counts == [4, 4]
    assert "NO_CACHE_KEY" not in seen
    assert seen[1] == "CACHE_HIT" and seen[3] == "CACHE_HIT"


async def test_proj_hostile_specs_still_raise_library_errors(
    store: SQLAlchemyProjectionStore,
) -> None:
    hostile: list[tuple[str, dict[str, Any], type[Exception]]] = [
        ("typed_orders", {"op": "=", "attr": "status; DROP TABLE x", "val": 1}, FieldNotFoundError),
        ("typed_orders", {"op": "'; --", "attr": "status", "val": 1}, OperatorNotFoundError),
        ("typed_orders", {"op": ">", "attr": "total", "val": "1 OR 1=1"}, InvalidValueError),
        ("doc_orders", {"op": "=", "attr": 'a"b', "val": 1}, InvalidSpecificationError),
        ("doc_orders", {"op": "=", "attr": "a\\b", "val": 1}, InvalidSpecificationError),
    ]
    for _ in range(2):  # again once whatever the first round memoised is in place
        for collection, spec, error in hostile:
            with pytest.raises(error):
                await store.find(collection, spec)
            with pytest.raises(error):
                await store.count(collection, spec)
    # a key that looks like SQL is just a (missing) key of the document
    assert await store.find("doc_orders", {"op": "=", "attr": "x') OR 1=1 --", "val": 1}) == []
    assert await store.count("doc_orders", {"op": "=", "attr": "status", "val": "' OR 1=1"}) == 0
    assert await store.count("doc_orders") == 10 and await store.count("typed_orders") == 10
