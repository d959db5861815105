"""SQLAlchemyProjectionStore on SQLite and PostgreSQL: the seed example, guarded upserts,
typed and document collections, specifications, auto-DDL, transactions."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import (
    DocumentWrite,
    FieldType,
    ProjectionField,
    ProjectionSchema,
)
from cqrs_ddd_core.errors import (
    ConfigurationError,
    FieldNotFoundError,
    InvalidValueError,
    MappingError,
)
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import set_fast_path
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder

Factory = async_sessionmaker[AsyncSession]

ORDER_SCHEMA = ProjectionSchema(
    [
        ProjectionField("order_id", FieldType.STRING, primary_key=True, length=64),
        ProjectionField("customer_name", FieldType.STRING, index=True),
        ProjectionField("total_amount", FieldType.DECIMAL),
        ProjectionField("items", FieldType.INTEGER),
        ProjectionField("placed_at", FieldType.DATETIME),
        ProjectionField("tags", FieldType.JSON),
        ProjectionField("paid", FieldType.BOOLEAN),
    ]
)


async def raw_count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        t = sa.table(table)
        return int((await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one())


async def test_seed_example_commits_without_uow(
    engine: AsyncEngine, session_factory: Factory
) -> None:
    projection_store = SQLAlchemyProjectionStore(session_factory)
    ok = await projection_store.upsert(
        collection="order_summaries",
        doc_id="123",
        doc={"order_id": "123", "total": 99.99},
    )
    assert ok is True
    # committed: a brand-new store (and session) sees it
    other = SQLAlchemyProjectionStore(session_factory)
    summary = await other.find_one(collection="order_summaries", doc_id="123")
    assert summary is not None
    assert summary["order_id"] == "123"
    assert summary["total"] == 99.99
    assert summary["_version"] == 1
    assert await raw_count(engine, "order_summaries") == 1


async def test_seed_projection_handler_example(session_factory: Factory) -> None:
    projection_store = SQLAlchemyProjectionStore(session_factory)

    async def handle_order_created(order_id: str, customer_name: str, total: float) -> bool:
        doc = {
            "order_id": order_id,
            "customer_name": customer_name,
            "total_amount": total,
            "_version": 1,
        }
        return await projection_store.upsert(collection="order_summaries", doc_id=order_id, doc=doc)

    assert await handle_order_created("order-123", "Ada", 10.5) is True
    # the same version again is refused by the guard
    assert await handle_order_created("order-123", "Ada", 10.5) is False
    summary = await projection_store.find_one(collection="order_summaries", doc_id="order-123")
    assert summary == {
        "order_id": "order-123",
        "customer_name": "Ada",
        "total_amount": 10.5,
        "_id": "order-123",
        "_version": 1,
        "_last_event_id": None,
        "_last_position": None,
    }


async def test_data_keyword_and_missing_document(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    assert await store.upsert(collection="c1", doc_id="a", data={"x": 1})
    assert (await store.get("c1", "a") or {})["x"] == 1
    with pytest.raises(ConfigurationError):
        await store.upsert(collection="c1", doc_id="a")
    with pytest.raises(ConfigurationError):
        await store.upsert(collection="c1", doc_id="a", doc={"x": 1}, data={"x": 2})
    assert await store.find_one(collection="c1", doc_id="missing") is None


async def test_version_guard(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    assert await store.upsert("docs", "d", {"v": 3}, version=3)
    assert not await store.upsert("docs", "d", {"v": 2}, version=2)
    assert not await store.upsert("docs", "d", {"v": 33}, version=3)
    assert await store.upsert("docs", "d", {"v": 4}, version=4)
    doc = await store.get("docs", "d")
    assert doc is not None
    assert (doc["v"], doc["_version"]) == (4, 4)
    with pytest.raises(InvalidValueError):
        await store.upsert("docs", "d", {"v": 1}, version=-1)
    with pytest.raises(InvalidValueError):
        await store.upsert("docs", "d", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        await store.upsert("docs", None, {"no": "id"})


async def test_unversioned_upserts_bump_version_and_track_last_event(
    session_factory: Factory,
) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    assert await store.upsert("docs", "d", {"n": 1}, event_id="e1", position=1)
    assert await store.upsert("docs", "d", {"n": 2}, event_id="e2", position=2)
    doc = await store.get("docs", "d")
    assert doc == {"n": 2, "_id": "d", "_version": 2, "_last_event_id": "e2", "_last_position": 2}
    # re-applying the same event is a no-op (idempotent by event id)
    assert not await store.upsert("docs", "d", {"n": 99}, event_id="e2", position=2)
    # writes that name no event always apply
    assert await store.upsert("docs", "d", {"n": 3})
    assert await store.upsert("docs", "d", {"n": 4})
    doc = await store.get("docs", "d")
    assert doc is not None
    assert (doc["n"], doc["_version"], doc["_last_event_id"]) == (4, 4, None)


async def test_upsert_joins_the_callers_unit_of_work(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    await store.ensure_collection("docs")
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.upsert("docs", "rolled-back", {"x": 1}, uow=uow)
        assert await store.get("docs", "rolled-back", uow=uow) is not None
        # not committed by the store: the UoW rolls back on exit
    assert await store.get("docs", "rolled-back") is None
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.upsert("docs", "ambient", {"x": 1})  # ambient unit of work
        await uow.commit()
    assert await store.get("docs", "ambient") is not None


async def test_collection_created_inside_rolled_back_uow_is_recreated(
    session_factory: Factory,
) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.upsert("fresh", "a", {"x": 1}, uow=uow)
    # the CREATE TABLE was rolled back with the unit of work; the store notices
    assert await store.upsert("fresh", "a", {"x": 1})
    assert await store.get("fresh", "a") is not None


async def test_upsert_many(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    writes = [DocumentWrite(doc_id=f"d{i}", doc={"i": i}, version=1) for i in range(2500)]
    assert await store.upsert_many("bulk", writes) == 2500
    assert await store.upsert_many("bulk", writes) == 0  # same versions: refused
    mixed = [
        DocumentWrite(doc_id="d1", doc={"i": 10}, version=2),
        DocumentWrite(doc_id="d1", doc={"i": 11}, version=3),  # same id twice in a batch
        DocumentWrite(doc_id="d2", doc={"i": 20}, event_id="e", position=5),
        DocumentWrite(doc_id="new", doc={"i": -1}),
    ]
    assert await store.upsert_many("bulk", mixed) == 3  # the two d1 writes coalesce
    got = await store.get_many("bulk", ["d1", "d2", "new", "nope"])
    assert {k: v["i"] for k, v in got.items()} == {"d1": 11, "d2": 20, "new": -1}
    assert got["d1"]["_version"] == 3
    assert got["d2"]["_version"] == 2
    assert await store.count("bulk") == 2501
    # consecutive plain writes to one id: one row, every write counted in _version
    plain = [DocumentWrite(doc_id="p", doc={"i": i}, event_id=f"e{i}") for i in range(5)]
    assert await store.upsert_many("bulk", plain) == 1
    assert await store.upsert_many("bulk", plain[:2]) == 1
    doc = await store.get("bulk", "p")
    assert doc is not None
    assert (doc["i"], doc["_version"], doc["_last_event_id"]) == (1, 7, "e1")
    # modes interleaved on one id keep their order
    interleaved = [
        DocumentWrite(doc_id="m", doc={"i": 1}),
        DocumentWrite(doc_id="m", doc={"i": 2}, version=10),
        DocumentWrite(doc_id="m", doc={"i": 3}, version=9),  # refused: older
        DocumentWrite(doc_id="m", doc={"i": 4}),
        DocumentWrite(doc_id="other", doc={"i": 5}),
    ]
    assert await store.upsert_many("bulk", interleaved) == 4
    doc = await store.get("bulk", "m")
    assert doc is not None
    assert (doc["i"], doc["_version"]) == (4, 11)


async def test_typed_collection(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    await store.ensure_collection("orders_typed", schema=ORDER_SCHEMA)
    placed = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    for i in range(10):
        await store.upsert(
            "orders_typed",
            f"o{i}",
            {
                "customer_name": "Ada" if i % 2 else "Bob",
                "total_amount": Decimal(i) * Decimal("10.25"),
                "items": i,
                "placed_at": placed,
                "tags": ["vip"] if i > 7 else [],
                "paid": i % 3 == 0,
            },
            version=1,
        )
    row = await store.find_one(collection="orders_typed", doc_id="o3")
    assert row is not None
    assert row["order_id"] == "o3"
    assert row["total_amount"] == Decimal("30.75")
    assert row["placed_at"] == placed
    assert row["paid"] is True
    assert row["_version"] == 1

    spec = (
        SpecificationBuilder()
        .where("customer_name", "eq", "Ada")
        .and_where("total_amount", "gte", 30)
        .build()
    )
    found = await store.find("orders_typed", spec, QueryOptions(order_by=["-items"], limit=3))
    assert [r["order_id"] for r in found] == ["o9", "o7", "o5"]
    names = await store.find(
        "orders_typed", None, QueryOptions(select_fields=["order_id"], order_by=["order_id"])
    )
    assert names[0] == {"order_id": "o0"}
    assert await store.count("orders_typed", {"op": "eq", "attr": "paid", "val": True}) == 4

    with pytest.raises(MappingError):
        await store.upsert("orders_typed", "o1", {"custmer_name": "typo"})
    with pytest.raises(MappingError):
        await store.upsert("orders_typed", "o1", {"order_id": "o2"})
    with pytest.raises(FieldNotFoundError):
        await store.find("orders_typed", {"op": "eq", "attr": "nope", "val": 1})


async def test_document_find_with_specifications(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    for i in range(20):
        await store.upsert(
            "docs",
            f"d{i:02d}",
            {"status": "open" if i % 2 else "closed", "total": i, "customer": {"name": f"c{i}"}},
        )
    spec = SpecificationBuilder().where("status", "eq", "open").and_where("total", "gt", 10).build()
    found = await store.find("docs", spec, QueryOptions(order_by=["id"]))
    assert [d["total"] for d in found] == [11, 13, 15, 17, 19]
    nested = await store.find("docs", {"op": "eq", "attr": "customer.name", "val": "c4"})
    assert [d["total"] for d in nested] == [4]
    paged = await store.find("docs", None, QueryOptions(order_by=["-id"], limit=2, offset=1))
    assert [d["total"] for d in paged] == [18, 17]
    by_version = await store.find("docs", {"op": "eq", "attr": "_version", "val": 1})
    assert len(by_version) == 20
    first = await store.find_one("docs", spec={"op": "eq", "attr": "total", "val": 7})
    assert first is not None
    assert first["status"] == "open"
    # hostile values are bound parameters
    assert await store.find("docs", {"op": "eq", "attr": "status", "val": "x' OR '1'='1"}) == []


async def test_delete_and_truncate(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    for i in range(5):
        await store.upsert("docs", f"d{i}", {"i": i})
    assert await store.delete("docs", "d1")
    assert not await store.delete("docs", "d1")
    assert await store.count("docs") == 4
    await store.truncate("docs")
    assert await store.count("docs") == 0


async def test_auto_ddl_disabled(session_factory: Factory) -> None:
    strict = SQLAlchemyProjectionStore(session_factory=session_factory, allow_auto_ddl=False)
    with pytest.raises(ConfigurationError, match="does not exist"):
        await strict.ensure_collection("order_summaries")
    with pytest.raises(ConfigurationError, match="auto-DDL"):
        await strict.upsert(collection="order_summaries", doc_id="1", doc={"x": 1})
    # created elsewhere (a migration): the strict store uses it
    dev = SQLAlchemyProjectionStore(session_factory)
    await dev.ensure_collection("order_summaries")
    await strict.ensure_collection("order_summaries")
    assert await strict.upsert(collection="order_summaries", doc_id="1", doc={"x": 1})
    # a typed schema over a document table is refused clearly
    typed = SQLAlchemyProjectionStore(session_factory, allow_auto_ddl=False)
    with pytest.raises(ConfigurationError, match="lacks the columns"):
        await typed.ensure_collection("order_summaries", schema=ORDER_SCHEMA)


async def test_table_for_migrations(session_factory: Factory, engine: AsyncEngine) -> None:
    store = SQLAlchemyProjectionStore(session_factory, schemas={"orders_typed": ORDER_SCHEMA})
    table = store.table("orders_typed")
    assert {"order_id", "customer_name", "_version", "_last_event_id"} <= set(table.c.keys())
    async with engine.begin() as conn:  # what a migration would do
        await conn.run_sync(store.metadata.create_all)
    strict = SQLAlchemyProjectionStore(
        session_factory, allow_auto_ddl=False, schemas={"orders_typed": ORDER_SCHEMA}
    )
    assert await strict.upsert("orders_typed", "o1", {"items": 1})


@pytest.mark.parametrize(
    "name",
    [
        "orders; DROP TABLE x",
        'orders"',
        "Orders",
        "1orders",
        "",
        "a" * 64,
        "order summaries",
        "cqrs_events",
        "projection_positions",
        "cqrs_leases",
    ],
)
async def test_hostile_collection_names_are_refused(
    session_factory: Factory, engine: AsyncEngine, name: str
) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    with pytest.raises(ConfigurationError):
        await store.upsert(name, "1", {"x": 1})
    with pytest.raises(ConfigurationError):
        await store.ensure_collection(name)


async def test_hostile_document_keys_and_ids(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    doc: dict[str, Any] = {"it's": "quoted", 'a"b': 1, "x; DROP TABLE docs": True}
    assert await store.upsert("docs", "id'; DROP TABLE docs; --", doc)
    assert await store.get("docs", "id'; DROP TABLE docs; --") == {
        **doc,
        "_id": "id'; DROP TABLE docs; --",
        "_version": 1,
        "_last_event_id": None,
        "_last_position": None,
    }


async def test_concurrent_versioned_upserts_keep_the_highest(session_factory: Factory) -> None:
    store = SQLAlchemyProjectionStore(session_factory)
    await store.ensure_collection("docs")
    versions = list(range(1, 41))
    random.Random(7).shuffle(versions)

    async def write(v: int) -> bool:
        return await store.upsert("docs", "hot", {"v": v}, version=v)

    await asyncio.gather(*(write(v) for v in versions))
    doc = await store.get("docs", "hot")
    assert doc is not None
    assert (doc["v"], doc["_version"]) == (40, 40)


async def test_upsert_is_one_statement(session_factory: Factory, engine: AsyncEngine) -> None:
    # every statement through SQLAlchemy, where the hook below sees it (the asyncpg fast path
    # would send this kept statement on the driver directly)
    set_fast_path(engine, False)
    store = SQLAlchemyProjectionStore(session_factory)
    await store.ensure_collection("docs")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await store.upsert("docs", "d", {"x": 1}, version=1)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 1
    assert "ON CONFLICT" in writes[0]
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")]


async def test_concurrent_first_use_creates_the_collection_once(session_factory: Factory) -> None:
    stores = [SQLAlchemyProjectionStore(session_factory) for _ in range(6)]
    results = await asyncio.gather(
        *(s.upsert("raced", f"d{i}", {"i": i}) for i, s in enumerate(stores))
    )
    assert all(results)
    assert await stores[0].count("raced") == 6
