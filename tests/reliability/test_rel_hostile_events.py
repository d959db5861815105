"""Hostile event payloads, stream ids and type names (SQLite and PostgreSQL).

Every append either stores the value literally (read back equal, by stream and through the
global log, exactly once) or raises an error from the library's tree — never a driver error —
and a refused append leaves the log exactly as it was. Filters and stream reads treat ids and
type names as data (``%``, ``_``, quotes and SQL fragments match only themselves).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table

SQL = "'; DROP TABLE cqrs_events; --"


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        doc = {"d": doc}
    return doc


PAYLOADS: list[tuple[str, Any]] = [
    ("sql-value", {"v": SQL}),
    ("sql-key", {SQL: SQL}),
    ("quotes", {"v": 'it\'s "quoted" \\ back\\slash %_'}),
    ("unicode", {"v": "日本語 😀 \u202e e\u0301", "日本": ["ü"]}),
    ("nul-value", {"v": "a\x00b"}),
    ("nul-key", {"a\x00": 1}),
    ("surrogate", {"v": "\ud800"}),
    ("object", {"v": object()}),
    ("set", {"v": {1, 2}}),
    ("bytes", {"v": b"\x00\xff"}),
    ("nan", {"v": math.nan}),
    ("inf", {"v": -math.inf}),
    ("huge-int", {"v": 2**70}),
    ("int-key", {1: "one"}),
    ("deep-100", _nested(100)),
    ("deep-100000", _nested(100_000)),
    ("10MB", {"blob": "x'%_\\" * (10 * 1024 * 1024 // 5)}),
]

STREAM_IDS = [
    SQL,
    "a%",
    "a_b",
    "%",
    "_",
    "it's",
    'dq"',
    "back\\slash",
    "流-1",
    "",
    " ",
    "x" * 300,
    "nul\x00id",
    "\ud800",
]


@pytest.fixture
def store(library_tables: AsyncEngine) -> SQLAlchemyEventStore:
    return SQLAlchemyEventStore(
        async_sessionmaker(library_tables, expire_on_commit=False), listen=False
    )


async def _log(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                events_table.c.event_id, events_table.c.stream_id, events_table.c.version
            ).order_by(events_table.c.position)
        )
        return [tuple(r) for r in rows]


async def _all(store: SQLAlchemyEventStore, expected: int, **filters: Any) -> list[StoredEvent]:
    """The whole global log (with ``filters``), once it shows ``expected`` events.

    On PostgreSQL the log only shows transactions below the cluster-wide horizon; other test
    processes sharing the server may hold it back for a moment, so this polls.
    """
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        out: list[StoredEvent] = []
        cursor = None
        while True:
            page, cursor = await store.read_all(after=cursor, limit=500, **filters)
            if not page:
                break
            out.extend(page)
        if len(out) >= expected or asyncio.get_running_loop().time() > deadline:
            return out
        await asyncio.sleep(0.1)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


async def _append_or_refuse(
    engine: AsyncEngine, store: SQLAlchemyEventStore, event: StoredEvent
) -> str:
    """Append; on a library error check nothing changed. Returns "stored" or "refused"."""
    before = await _log(engine)
    try:
        await store.append(event)
    except CQRSDDDError:
        assert await _log(engine) == before
        return "refused"
    return "stored"


@pytest.mark.parametrize(("label", "payload"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
async def test_rel_hostile_payloads(
    library_tables: AsyncEngine, store: SQLAlchemyEventStore, label: str, payload: Any
) -> None:
    engine = library_tables
    await store.append(StoredEvent(event_type="Before", aggregate_id="other", payload={"n": 1}))
    event = StoredEvent(event_type="Hostile", aggregate_id="s-1", payload=payload)
    outcome = await _append_or_refuse(engine, store, event)
    if outcome == "refused":
        assert await store.get_events("s-1") == []
        if label in {"sql-value", "sql-key", "quotes", "unicode", "deep-100", "10MB"}:
            pytest.fail(f"{label}: a valid JSON payload was refused")
        return
    if label in {"object", "surrogate", "deep-100000"}:
        pytest.fail(f"{label}: stored a payload that is not JSON")
    (got,) = await store.get_events("s-1")
    assert got.event_id == event.event_id and got.version == 1
    if label in {"sql-value", "sql-key", "quotes", "unicode", "deep-100", "10MB", "huge-int"}:
        assert got.payload == payload  # stored literally
    elif label in {"nan", "inf"}:
        assert _same(got.payload["v"], payload["v"])
    everything = await _all(store, 2)
    assert [e.event_id for e in everything].count(event.event_id) == 1
    assert {e.aggregate_id for e in everything} == {"other", "s-1"}


@pytest.mark.parametrize("stream_id", STREAM_IDS, ids=range(len(STREAM_IDS)))
async def test_rel_hostile_stream_ids(
    library_tables: AsyncEngine, store: SQLAlchemyEventStore, stream_id: str
) -> None:
    engine = library_tables
    # neighbours that a wildcard or a truncation would confuse with the hostile id
    for neighbour in ("abc", "axb", "a", "x", "nul", "x" * 255):
        await store.append(StoredEvent(event_type="N", aggregate_id=neighbour, payload={}))
    event = StoredEvent(event_type="Hostile", aggregate_id=stream_id, payload={"id": stream_id})
    outcome = await _append_or_refuse(engine, store, event)
    if outcome == "refused":
        assert stream_id in {"", " ", "x" * 300, "nul\x00id", "\ud800"}, "a plain id was refused"
        return
    got = await store.get_events(stream_id)
    assert [e.event_id for e in got] == [event.event_id]
    assert got[0].aggregate_id == stream_id
    assert await store.get_version(stream_id) == 1
    assert await store.stream_exists(stream_id)
    for neighbour in ("abc", "axb", "a", "x", "nul", "x" * 255):
        if neighbour != stream_id:
            assert [e.event_type for e in await store.get_events(neighbour)] == ["N"]
    log = await _log(engine)
    assert [r[1] for r in log].count(stream_id) == 1


async def test_rel_hostile_type_filters_are_literal(
    library_tables: AsyncEngine, store: SQLAlchemyEventStore
) -> None:
    names = ["Order%", "Order_", "Orderx", "OrderAB", SQL, "it's"]
    for i, name in enumerate(names):
        await store.append(
            StoredEvent(event_type=name, aggregate_id=f"s{i}", aggregate_type=name, payload={})
        )
    for name in names:
        page = await _all(store, 1, event_types=[name])
        assert [e.event_type for e in page] == [name]
        page = await _all(store, 1, aggregate_types=[name])
        assert [e.aggregate_type for e in page] == [name]
    assert len(await _all(store, len(names))) == len(names)
    page, _ = await store.read_all(event_types=["%"])
    assert page == []
