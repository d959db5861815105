"""Identifiers never come from user input unchecked (SQLite and PostgreSQL).

Collection and field names become table and column names, so they are validated (a
conservative alphabet, not a library table, not a catalog table); everything else a caller
passes — document ids, projection names, NOTIFY channels, stream ids — is bound as data.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_advanced_core.projections import ProjectionField, ProjectionSchema
from cqrs_ddd_core.errors import ConfigurationError, CQRSDDDError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    SQLAlchemyProjectionPositionStore,
    SQLAlchemyProjectionStore,
)
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage

SQL = "x; DROP TABLE cqrs_events; --"
BAD_NAMES = [
    SQL,
    'a"b',
    "a'b",
    "a b",
    "Orders",
    "ä",
    "",
    "1abc",
    "x" * 64,
    "a-b",
    "a.b",
    "public.t",
    "cqrs_events",
    "outbox_messages",
    "projection_positions",
    None,
    5,
]
NEWLINE_NAMES = ["abc\n", "x" * 63 + "\n"]


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


@pytest.mark.parametrize("name", BAD_NAMES, ids=range(len(BAD_NAMES)))
async def test_rel_bad_collection_names_are_refused(library_tables: AsyncEngine, name: Any) -> None:
    engine = library_tables
    before = await _tables(engine)
    store = SQLAlchemyProjectionStore(
        async_sessionmaker(engine, expire_on_commit=False), allow_auto_ddl=True
    )
    with pytest.raises(ConfigurationError):
        await store.ensure_collection(name)
    with pytest.raises(ConfigurationError):
        await store.upsert(name, "d-1", {"a": 1})
    typed = SQLAlchemyProjectionStore(
        async_sessionmaker(engine, expire_on_commit=False), allow_auto_ddl=True
    )
    with pytest.raises(ConfigurationError):  # at registration, or at the latest on first use
        typed.register(name, ProjectionSchema([ProjectionField("n")]))
        await typed.ensure_collection(name)
    assert await _tables(engine) == before


@pytest.mark.parametrize("name", NEWLINE_NAMES, ids=["short", "63"])
async def test_rel_collection_names_with_trailing_newline_are_refused(
    library_tables: AsyncEngine, name: str
) -> None:
    store = SQLAlchemyProjectionStore(
        async_sessionmaker(library_tables, expire_on_commit=False), allow_auto_ddl=True
    )
    with pytest.raises(ConfigurationError):
        await store.ensure_collection(name)


@pytest.mark.parametrize(
    "field",
    [
        SQL,
        'a"b',
        "A",
        "",
        "1a",
        "x" * 64,
        "_version",
        "a\n",
    ],
)
def test_rel_bad_field_names_are_refused(field: str) -> None:
    with pytest.raises(ConfigurationError):
        ProjectionSchema([ProjectionField(field)])


@pytest.mark.postgres_only
@pytest.mark.parametrize("name", ["pg_class", "pg_roles", "pg_stat_activity", "information_schema"])
async def test_rel_catalog_names_do_not_reach_the_catalog(
    library_tables: AsyncEngine, dialect_name: str, name: str
) -> None:
    """A collection named like a catalog relation is refused, or is a table of its own — never
    a read of (or a write into) the catalog, which comes first in PostgreSQL's search path."""
    store = SQLAlchemyProjectionStore(
        async_sessionmaker(library_tables, expire_on_commit=False), allow_auto_ddl=True
    )
    try:
        await store.ensure_collection(name)
        await store.upsert(name, "d-1", {"a": 1})
        docs = await store.find(name)
    except CQRSDDDError:
        return
    assert [d["_id"] for d in docs] == ["d-1"]


async def test_rel_document_ids_and_projection_names_are_data(library_tables: AsyncEngine) -> None:
    factory = async_sessionmaker(library_tables, expire_on_commit=False)
    store = SQLAlchemyProjectionStore(factory, allow_auto_ddl=True)
    positions = SQLAlchemyProjectionPositionStore(factory)
    ids = [SQL, "it's", 'dq"', "%", "_", "a%", "back\\slash", "日本", " "]
    for i, doc_id in enumerate(ids):
        await store.upsert("rel_docs", doc_id, {"i": i, "v": doc_id})
    for i, doc_id in enumerate(ids):
        got = await store.get("rel_docs", doc_id)
        assert got is not None and got["i"] == i and got["v"] == doc_id
    assert len(await store.find("rel_docs")) == len(ids)
    assert await store.delete("rel_docs", "%")
    assert len(await store.find("rel_docs")) == len(ids) - 1  # only the literal "%" went
    for i, name in enumerate(ids):
        await positions.save_position(name, i + 1)
    for i, name in enumerate(ids):
        assert await positions.get_position(name) == i + 1
    assert "cqrs_events" in await _tables(library_tables)


@pytest.mark.parametrize("channel", [SQL, 'a"b', "a'b", "UPPER", "x" * 100])
async def test_rel_notify_channels_are_data(library_tables: AsyncEngine, channel: str) -> None:
    try:
        outbox = SQLAlchemyOutboxStorage(library_tables, channel=channel)
        await outbox.save_messages([OutboxMessage(event_type="E", message_id="m-1")])
    except CQRSDDDError:
        # PostgreSQL limits channel names to 63 bytes: refused, as a library error
        assert len(channel.encode()) > 63 and library_tables.dialect.name == "postgresql"
        return
    claimed = await outbox.claim(10)
    assert [c.message.message_id for c in claimed] == ["m-1"]
    assert "cqrs_events" in await _tables(library_tables)
