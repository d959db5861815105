"""Projection pieces without a database: schemas, handlers, buffers, compiled upserts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from cqrs_ddd_advanced_core.projections import (
    DocumentWrite,
    ErrorPolicy,
    FieldType,
    Projection,
    ProjectionContext,
    ProjectionField,
    ProjectionHandlerError,
    ProjectionSchema,
    WriteBuffer,
    validate_identifier,
)
from cqrs_ddd_core import DomainEvent
from cqrs_ddd_core.errors import ConfigurationError, CQRSDDDError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED
from cqrs_ddd_persistence_sqlalchemy.projections.reads import into_document
from cqrs_ddd_persistence_sqlalchemy.projections.writes import plan

pg_mod = SUPPORTED["postgresql"]
sqlite_mod = SUPPORTED["sqlite"]


class ProjUnitOrderPlaced(DomainEvent):
    total: int = 0


def event(n: int = 1, event_type: str = "Tick", stream: str = "s") -> StoredEvent:
    return StoredEvent(
        event_type=event_type, aggregate_id=stream, payload={"n": n}, version=n, position=n
    )


class FakeStore:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fail = False

    async def ensure_collection(self, name: str, *, schema: Any = None, uow: Any = None) -> None:
        pass

    async def upsert(self, collection: str, doc_id: Any, doc: Any = None, **kw: Any) -> bool:
        self.calls.append(("upsert", collection, doc_id))
        return True

    async def upsert_many(self, collection: str, docs: Any, *, uow: Any = None) -> int:
        if self.fail:
            raise RuntimeError("write failed")
        self.calls.append(("upsert_many", collection, list(docs)))
        return len(docs)

    async def get(self, collection: str, doc_id: Any, *, uow: Any = None) -> Any:
        self.calls.append(("get", collection, doc_id))
        return None

    async def delete(self, collection: str, doc_id: Any, *, uow: Any = None) -> bool:
        self.calls.append(("delete", collection, doc_id))
        return True

    async def truncate(self, collection: str, *, uow: Any = None) -> None:
        pass


@pytest.mark.parametrize("name", ["orders", "order_summaries", "_x", "a1", "a" * 63])
def test_valid_identifiers(name: str) -> None:
    assert validate_identifier(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Orders", "1a", "a-b", "a b", "a;b", 'a"b', "a'b", "a" * 64, "é", "a.b", None, 3],
)
def test_invalid_identifiers(name: Any) -> None:
    with pytest.raises(ConfigurationError):
        validate_identifier(name)


def test_schema_primary_key_rules() -> None:
    plain = ProjectionSchema([ProjectionField("name")])
    assert plain.id_field == "id"
    assert plain.names == ("id", "name")
    with_id = ProjectionSchema([ProjectionField("id", FieldType.INTEGER), ProjectionField("n")])
    assert with_id.id_field == "id"
    field = with_id.get("id")
    assert field is not None
    assert (field.primary_key, field.nullable, field.type) == (True, False, FieldType.INTEGER)
    keyed = ProjectionSchema([ProjectionField("order_id", primary_key=True)])
    assert keyed.id_field == "order_id"
    assert keyed == ProjectionSchema([ProjectionField("order_id", primary_key=True)])
    with pytest.raises(ConfigurationError, match="duplicate"):
        ProjectionSchema([ProjectionField("a"), ProjectionField("a")])
    with pytest.raises(ConfigurationError, match="exactly one"):
        ProjectionSchema(
            [ProjectionField("a", primary_key=True), ProjectionField("b", primary_key=True)]
        )
    with pytest.raises(ConfigurationError, match="reserved"):
        ProjectionField("_version")
    with pytest.raises(ConfigurationError):
        ProjectionField("Bad Name")
    assert ProjectionField("t", "datetime").type is FieldType.DATETIME  # type: ignore[arg-type]


async def test_projection_handlers_by_type_name_and_class() -> None:
    projection = Projection("p", collections=["a"])
    seen: list[str] = []

    @projection.on("Tick")
    def sync_handler(e: StoredEvent, ctx: ProjectionContext) -> None:
        seen.append(f"sync:{e.payload['n']}")

    @projection.on("Tick", ProjUnitOrderPlaced)
    async def async_handler(e: StoredEvent, ctx: ProjectionContext) -> None:
        seen.append(f"async:{e.event_type}")

    assert projection.handles("Tick")
    assert projection.handles("ProjUnitOrderPlaced")
    assert not projection.handles("Other")
    assert projection.handlers.event_types == {"Tick", "ProjUnitOrderPlaced"}
    ctx = ProjectionContext("p", FakeStore(), event())
    await projection.apply(event(7), ctx)
    await projection.apply(event(1, "ProjUnitOrderPlaced"), ctx)
    await projection.apply(event(1, "Other"), ctx)  # no handler: skipped
    assert seen == ["sync:7", "async:Tick", "async:ProjUnitOrderPlaced"]
    with pytest.raises(ConfigurationError):
        projection.on()
    with pytest.raises(ConfigurationError):
        projection.on(42)(sync_handler)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Projection("")
    with pytest.raises(ConfigurationError):
        Projection("p", collections=["Bad; DROP"])


def test_projection_collections_include_schemas() -> None:
    schema = ProjectionSchema([ProjectionField("n")])
    projection = Projection("p", collections=["docs"], schemas={"typed": schema})
    assert projection.collections == ("docs", "typed")
    assert "Projection('p'" in repr(projection)


def test_error_policy_backoff() -> None:
    policy = ErrorPolicy(max_attempts=5, backoff=0.5, max_backoff=3)
    assert [policy.delay(a) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_handler_error_names_the_event() -> None:
    failing = event(37)
    error = ProjectionHandlerError("orders", failing, 3)
    assert isinstance(error, CQRSDDDError)
    text = str(error)
    assert failing.event_id in text
    assert "Tick" in text
    assert "position 37" in text
    assert "'orders'" in text
    assert (error.event_id, error.position, error.attempts) == (failing.event_id, 37, 3)


async def test_context_writes_through_or_buffers() -> None:
    store = FakeStore()
    e = event(5)
    ctx = ProjectionContext("p", store, e, uow="U")
    assert await ctx.upsert("docs", "d", {"x": 1})
    _, _, writes = store.calls[-1]
    assert writes == [
        DocumentWrite(doc_id="d", doc={"x": 1}, event_id=e.event_id, position=5, version=None)
    ]
    await ctx.upsert("docs", "d", {"x": 1}, idempotent=False, version=3)
    assert store.calls[-1][2][0].event_id is None
    assert store.calls[-1][2][0].version == 3

    store.calls.clear()
    buffer = WriteBuffer()
    buffered = ProjectionContext("p", store, e, buffer=buffer)
    assert await buffered.upsert("docs", "a", {"x": 1})
    assert await buffered.upsert("other", "b", {"x": 2})
    assert store.calls == []
    assert len(buffer) == 2
    # a read of a collection flushes its pending writes first (read your writes)
    await buffered.get("docs", "a")
    assert [c[0:2] for c in store.calls] == [("upsert_many", "docs"), ("get", "docs")]
    await buffered.delete("other", "b")
    assert [c[0:2] for c in store.calls][-2:] == [("upsert_many", "other"), ("delete", "other")]
    assert len(buffer) == 0
    assert await buffer.flush(store, None) == 0


async def test_buffer_flush_failure_is_flagged() -> None:
    store = FakeStore()
    buffer = WriteBuffer()
    buffer.add("docs", DocumentWrite(doc_id="a", doc={}))
    store.fail = True
    with pytest.raises(RuntimeError):
        await buffer.flush(store, None)
    assert buffer.failed


def _rows(*specs: tuple[str, int | None]) -> list[tuple[bool, dict[str, Any]]]:
    rows = []
    for i, (doc_id, version) in enumerate(specs):
        row = {"id": doc_id, "doc": {"i": i}, "_version": version or 1}
        rows.append((version is not None, row))
    return rows


def test_plan_coalesces_writes_per_id() -> None:
    coalesced = list(plan(_rows(("a", None), ("a", None), ("b", None), ("a", None)), "id"))
    assert coalesced == [
        (
            False,
            [
                {"id": "a", "doc": {"i": 3}, "_version": 3},
                {"id": "b", "doc": {"i": 2}, "_version": 1},
            ],
        )
    ]
    versioned = list(plan(_rows(("a", 2), ("a", 5), ("a", 4), ("a", 5)), "id"))
    assert versioned == [(True, [{"id": "a", "doc": {"i": 1}, "_version": 5}])]
    mixed = list(plan(_rows(("a", None), ("a", 7), ("a", None), ("b", 1)), "id"))
    assert [(v, [(r["id"], r["_version"]) for r in rows]) for v, rows in mixed] == [
        (False, [("a", 1)]),
        (True, [("b", 1)]),
        (True, [("a", 7)]),
        (False, [("a", 1)]),
    ]


def test_document_fields_are_rewritten_into_the_document() -> None:
    columns = frozenset({"id", "doc", "_version"})
    tree = {
        "op": "and",
        "conditions": [
            {"op": "eq", "attr": "status", "val": "x"},
            {"op": "not", "condition": {"op": "gt", "attr": "customer.age", "val": 3}},
            {"op": "eq", "attr": "_version", "val": 1},
            {"op": "eq", "attr": "id", "val": "a"},
        ],
    }
    assert into_document(tree, columns) == {
        "op": "and",
        "conditions": [
            {"op": "eq", "attr": "doc.status", "val": "x"},
            {"op": "not", "condition": {"op": "gt", "attr": "doc.customer.age", "val": 3}},
            {"op": "eq", "attr": "_version", "val": 1},
            {"op": "eq", "attr": "id", "val": "a"},
        ],
    }


@pytest.mark.parametrize(
    ("module", "dialect"), [(pg_mod, postgresql.dialect()), (sqlite_mod, sqlite.dialect())]
)
def test_compiled_upserts_are_one_guarded_statement(module: Any, dialect: Any) -> None:
    store = SQLAlchemyProjectionStore()
    coll = store.collections.get("order_summaries")
    guarded = str(store._writes.upsert(module, coll, True).compile(dialect=dialect))
    assert "INSERT INTO order_summaries" in guarded
    assert "ON CONFLICT (id) DO UPDATE SET" in guarded
    assert "WHERE order_summaries._version < excluded._version" in guarded
    assert "RETURNING" in guarded
    plain = str(store._writes.upsert(module, coll, False).compile(dialect=dialect))
    assert "_version = (order_summaries._version + excluded._version)" in plain
    assert "excluded._last_event_id IS NULL" in plain
    distinct = "IS DISTINCT FROM" if module is pg_mod else "IS NOT"
    assert f"order_summaries._last_event_id {distinct} excluded._last_event_id" in plain
    # cached: built once per collection and mode
    assert store._writes.upsert(module, coll, True) is store._writes.upsert(module, coll, True)


def test_typed_table_columns() -> None:
    schema = ProjectionSchema(
        [
            ProjectionField("order_id", primary_key=True, length=40),
            ProjectionField("total", FieldType.DECIMAL),
            ProjectionField("at", FieldType.DATETIME, index=True),
            ProjectionField("tags", FieldType.JSON),
        ]
    )
    store = SQLAlchemyProjectionStore(schemas={"orders": schema})
    table = store.table("orders")
    assert [c.name for c in table.primary_key] == ["order_id"]
    assert set(table.c.keys()) == {
        "order_id",
        "total",
        "at",
        "tags",
        "_version",
        "_last_event_id",
        "_last_position",
        "_updated_at",
    }
    assert [i.name for i in table.indexes] == ["ix_orders_at"]
    with pytest.raises(ConfigurationError):
        store.register("orders", ProjectionSchema([ProjectionField("other")]))


def test_plan_drops_a_repeated_write_of_one_event() -> None:
    rows: list[tuple[bool, dict[str, Any]]] = [
        (False, {"id": "a", "doc": {"w": 1}, "_version": 1, "_last_event_id": "e1"}),
        (False, {"id": "a", "doc": {"w": 2}, "_version": 1, "_last_event_id": "e1"}),
        (False, {"id": "a", "doc": {"w": 3}, "_version": 1, "_last_event_id": "e2"}),
        (False, {"id": "a", "doc": {"w": 4}, "_version": 1, "_last_event_id": None}),
        (False, {"id": "a", "doc": {"w": 5}, "_version": 1, "_last_event_id": None}),
    ]
    ((versioned, batch),) = list(plan(rows, "id"))
    assert not versioned
    assert [(r["doc"], r["_version"]) for r in batch] == [({"w": 5}, 4)]


def test_buffer_previews_documents_read_in_the_batch() -> None:
    store = SQLAlchemyProjectionStore()
    store.collections.get("docs")
    buffer = WriteBuffer()
    assert buffer.preview(store, "docs", "a") == (False, None)  # never read
    base = {"n": 1, "_id": "a", "_version": 4, "_last_event_id": "e0", "_last_position": 3}
    buffer.remember("docs", "a", base)
    base["n"] = 99  # the caller's copy is not the buffer's
    assert buffer.preview(store, "docs", "a") == (True, {**base, "n": 1})
    buffer.add("docs", DocumentWrite(doc_id="a", doc={"n": 2, "d": Decimal("1.5")}, event_id="e1"))
    buffer.add("docs", DocumentWrite(doc_id="a", doc={"n": 3}, event_id="e1"))  # refused
    known, doc = buffer.preview(store, "docs", "a")
    assert known
    assert doc == {
        "n": 2,
        "d": "1.5",  # as the JSON column gives it back
        "_id": "a",
        "_version": 5,
        "_last_event_id": "e1",
        "_last_position": None,
    }
    buffer.add("docs", DocumentWrite(doc_id="a", doc={"n": 4}, version=9))
    assert buffer.preview(store, "docs", "a") == (False, None)  # versioned: ask the database
    buffer.remember("missing", "x", None)
    assert buffer.preview(FakeStore(), "missing", "x") == (True, None)
    buffer.add("missing", DocumentWrite(doc_id="x", doc={"n": 1}))
    assert buffer.preview(FakeStore(), "missing", "x") == (False, None)  # no previewer


async def test_buffer_flush_forgets_what_was_read() -> None:
    store = FakeStore()
    buffer = WriteBuffer()
    buffer.remember("docs", "a", {"n": 1})
    buffer.remember("other", "b", {"n": 2})
    buffer.add("docs", DocumentWrite(doc_id="a", doc={"n": 2}))
    await buffer.flush(store, None, "docs")
    assert buffer.preview(store, "docs", "a") == (False, None)
    assert buffer.preview(store, "other", "b") == (True, {"n": 2})
    buffer.add("other", DocumentWrite(doc_id=None, doc={"id": "b", "n": 3}))
    assert buffer.preview(store, "other", "b") == (False, None)


async def test_handlers_are_unit_testable_with_the_in_memory_store() -> None:
    from cqrs_ddd_advanced_core.projections import InMemoryProjectionStore

    projection = Projection("totals", collections=["totals"])

    @projection.on("Tick")
    async def add(e: StoredEvent, ctx: ProjectionContext) -> None:
        doc = await ctx.get("totals", e.aggregate_id) or {"sum": 0}
        await ctx.upsert("totals", e.aggregate_id, {"sum": doc["sum"] + e.payload["n"]})

    store = InMemoryProjectionStore()
    for n in (1, 2, 3):
        tick = event(n)
        await projection.apply(tick, ProjectionContext("totals", store, tick))
    await projection.apply(tick, ProjectionContext("totals", store, tick))  # redelivered: no-op
    doc = await store.get("totals", "s")
    assert doc is not None
    assert (doc["sum"], doc["_version"], doc["_last_position"]) == (6, 3, 3)
