"""The append fast path on asyncpg (``postgres/driver.py``): taken, equivalent, and safe.

Outside a unit of work a PostgreSQL append runs its prebuilt ``INSERT`` straight on asyncpg's
connection. These tests pin that it is really taken, that what it stores is what the
SQLAlchemy path stores, and that a cancelled append leaves neither a half-used connection in
the pool nor a stored event.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.conftest import pg_dsn

from cqrs_ddd_core import StoredEvent, StreamState
from cqrs_ddd_core.errors import WrongExpectedVersionError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.event_log import _INSERTS
from cqrs_ddd_persistence_sqlalchemy.eventstore.store import (
    _STREAM_EXISTS,
    _STREAM_READ,
    _STREAM_VERSION,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import DriverStatement
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

pytestmark = pytest.mark.postgres_only

SF = async_sessionmaker[AsyncSession]


@pytest.mark.asyncpg_only
def test_append_statements_compile_for_the_driver(library_tables: AsyncEngine) -> None:
    dialect = library_tables.sync_engine.dialect
    for guarded in (False, True):
        call = DriverStatement.compile(_INSERTS[guarded], dialect)
        assert call is not None
        assert call.sql.startswith(("INSERT", "WITH")) and "$1" in call.sql
        # Literal binds of the statement itself (coalesce(..., 0), LIMIT 1) are filled in.
        assert set(call.defaults) <= set(call.names)
        assert {"stream_id", "events", "first_event_id", "lo", "hi", "notify"} <= set(call.names)


@pytest.mark.asyncpg_only
def test_stream_reads_compile_for_the_driver(library_tables: AsyncEngine) -> None:
    dialect = library_tables.sync_engine.dialect
    for stmt in (_STREAM_READ, _STREAM_VERSION, _STREAM_EXISTS):
        call = DriverStatement.compile(stmt, dialect)
        assert call is not None and call.sql.startswith("SELECT")
        assert "stream_id" in call.names


async def test_driver_reads_return_what_the_uow_reads_return(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, listen=False)
    await store.append(
        [StoredEvent(event_type="E", aggregate_id="r", payload={"i": i}) for i in range(5)]
    )
    async with SQLAlchemyUnitOfWork(session_factory):
        in_uow = (
            await store.get_events("r", from_version=2, to_version=4),
            await store.get_version("r"),
            await store.stream_exists("r"),
            await store.stream_exists("nope"),
        )
    outside = (
        await store.get_events("r", from_version=2, to_version=4),
        await store.get_version("r"),
        await store.stream_exists("r"),
        await store.stream_exists("nope"),
    )
    assert in_uow == outside
    assert [e.payload for e in outside[0]] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert outside[1:] == (5, True, False)


@pytest.mark.asyncpg_only
def test_driver_form_converts_values_as_sqlalchemy_would_or_declines(
    library_tables: AsyncEngine,
) -> None:
    dialect = library_tables.sync_engine.dialect
    t = Table(
        "driver_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("amount", Numeric(10, 2, asdecimal=False)),
    )
    at = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    timed = DriverStatement.compile(
        insert(t).values(id=bindparam("v", type_=UTCDateTime())), dialect
    )
    assert timed is not None
    [utc] = timed.args({"v": at})
    assert utc == at and utc.utcoffset() == timedelta(0)  # UTCDateTime's own processor ran
    with pytest.raises(ValueError, match="naive"):
        timed.args({"v": datetime(2024, 1, 1)})
    as_json = DriverStatement.compile(
        insert(t).values(id=bindparam("v", type_=JSONType())), dialect
    )
    assert as_json is not None
    assert as_json.args({"v": {"a": Decimal("1.5")}}) != [{"a": Decimal("1.5")}]  # encoded
    # Per-execution rendering (expanding IN) or result conversion: SQLAlchemy's path.
    assert DriverStatement.compile(select(t.c.id).where(t.c.id.in_([1, 2])), dialect) is None
    assert DriverStatement.compile(select(t.c.amount), dialect) is None
    assert DriverStatement.compile(select(t.c.id).where(t.c.id == bindparam("v")), dialect)


async def test_driver_path_stores_what_the_uow_path_stores(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, listen=False)
    at = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=5)))

    def event(stream: str) -> StoredEvent:
        return StoredEvent(
            event_type="DriverProbe",
            aggregate_id=stream,
            aggregate_type="Probe",
            payload={"text": "ünï €\u2028'\";--", "n": 2**53 + 1, "nested": {"a": [1, None]}},
            metadata={"who": "x"},
            occurred_at=at,
            correlation_id="c-1",
            causation_id=None,
            tenant_id="t-1",
        )

    [fast] = await store.append(event("fast"), expected_version=StreamState.NO_STREAM)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        [slow] = await store.append(event("slow"), expected_version=StreamState.NO_STREAM)
        await uow.commit()
    [f] = await store.get_events("fast")
    [s] = await store.get_events("slow")
    for got, returned in ((f, fast), (s, slow)):
        assert got.position == returned.position and got.version == 1
    keep = ("payload", "metadata", "occurred_at", "correlation_id", "tenant_id", "event_type")
    assert {k: getattr(f, k) for k in keep} == {k: getattr(s, k) for k in keep}
    assert f.occurred_at == at and f.occurred_at.tzinfo is not None
    assert f.occurred_at.utcoffset() == timedelta(0)


async def test_occ_conflict_on_the_driver_path_names_the_versions(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, listen=False)
    await store.append(StoredEvent(event_type="E", aggregate_id="occ"), expected_version=0)
    with pytest.raises(WrongExpectedVersionError) as info:
        await store.append(StoredEvent(event_type="E", aggregate_id="occ"), expected_version=0)
    assert (info.value.expected_version, info.value.actual_version) == (0, 1)


async def test_cancelled_append_stores_nothing_and_spoils_no_pooled_connection(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    """Cancel an append while PostgreSQL makes it wait, then use every pooled connection."""
    store = SQLAlchemyEventStore(session_factory, listen=False)
    blocker = StoredEvent(event_type="E", aggregate_id="held", event_id="held-1")
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        # Holds version 1 of the stream uncommitted: an autocommit append of version 1 waits
        # on the unique index for this transaction to end.
        await store.append(blocker, expected_version=StreamState.NO_STREAM)
        # A fresh context: the task must not join the ambient unit of work.
        waiting = asyncio.create_task(
            store.append(StoredEvent(event_type="E", aggregate_id="held", event_id="held-2")),
            context=contextvars.Context(),
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await uow.commit()
    assert [e.event_id for e in await store.get_events("held")] == ["held-1"]
    # Every connection the pool hands out now works (none is left mid-statement).
    results: list[Any] = await asyncio.gather(
        *(store.append(StoredEvent(event_type="E", aggregate_id=f"after-{i}")) for i in range(8))
    )
    assert all(r[0].version == 1 for r in results)
    assert [e.version for e in await store.get_events("held")] == [1]


async def _listening(
    store: SQLAlchemyEventStore, seen: list[str], expected: int
) -> asyncio.Task[None]:
    """A subscriber task collecting event ids into ``seen`` until it has ``expected`` of them,
    returned once it is LISTENing and idle."""

    async def consume() -> None:
        async with contextlib.aclosing(store.subscribe()) as events:
            async for event in events:
                seen.append(event.event_id)
                if len(seen) == expected:
                    return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    return task


async def test_coalesced_notify_wakes_a_listen_only_subscriber_for_every_commit(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    """Autocommit appends notify after their commit, folded together: none is missed.

    The subscriber has no polling (``poll_interval=None``): every event it sees it was woken
    for. Writers append in bursts, with pauses, so that both a folded and a lone notification
    must arrive after the commit they stand for.
    """
    store = SQLAlchemyEventStore(session_factory, poll_interval=None)
    seen: list[str] = []
    task = await _listening(store, seen, 5 * 12)
    written: list[str] = []
    for burst in range(5):
        results = await asyncio.gather(
            *(
                store.append(StoredEvent(event_type="E", aggregate_id=f"b{burst}-{i}"))
                for i in range(12)
            )
        )
        written += [r[0].event_id for r in results]
        await asyncio.sleep(0.05)
    await asyncio.wait_for(task, 10)
    assert sorted(seen) == sorted(written)


async def test_overlapping_appends_share_notifications_serial_ones_notify_each(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    channel = f"es_probe_{uuid.uuid4().hex[:8]}"
    store = SQLAlchemyEventStore(session_factory, listen=False, channel=channel)
    # Only burst ends send (no time-based sends however slow the machine): the count below
    # then depends on the rule, not on timing.
    notifier = store.log_for()._notifier  # type: ignore[attr-defined]
    notifier.max_delay = 3600.0
    received: list[float] = []
    listener = await asyncpg.connect(pg_dsn())
    try:
        await listener.add_listener(channel, lambda *_: received.append(time.monotonic()))

        async def settle() -> int:
            await asyncio.sleep(0.2)  # notifications are delivered asynchronously
            n = len(received)
            received.clear()
            return n

        for i in range(10):  # alone: each notifies in its own statement
            await store.append(StoredEvent(event_type="E", aggregate_id=f"serial-{i}"))
        assert await settle() == 10

        appends = 0
        for burst in range(4):  # 8 overlapping writers, 5 appends each

            async def writer(w: int, burst: int = burst) -> None:
                for k in range(5):
                    await store.append(
                        StoredEvent(event_type="E", aggregate_id=f"b{burst}-{w}-{k}")
                    )

            await asyncio.gather(*(writer(w) for w in range(8)))
            appends += 40
        shared = await settle()
        assert 4 <= shared < appends // 4, (shared, appends)  # at least one per burst
    finally:
        await listener.close()


async def test_sustained_load_carries_owed_notifications_in_append_statements(
    library_tables: AsyncEngine, session_factory: SF, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With overlapping writers, an owed notification rides in the next append's statement
    (here: every time one is owed, ``max_delay=0``); a separate ``NOTIFY`` transaction is sent
    only when a burst ends. A listen-only subscriber (no polling) still sees every event."""
    from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.queue import NOTIFY
    from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for

    store = SQLAlchemyEventStore(session_factory, poll_interval=None)
    notifier = store.log_for()._notifier  # type: ignore[attr-defined]
    notifier.max_delay = 0.0
    separate: list[object] = []
    execution = execution_for(library_tables)
    fetch = execution.fetch

    async def spy(stmt: Any, params: Any = None) -> Any:
        if stmt is NOTIFY:
            separate.append(stmt)
        return await fetch(stmt, params)

    monkeypatch.setattr(execution, "fetch", spy)
    seen: list[str] = []
    bursts, writers, appends = 4, 8, 5
    task = await _listening(store, seen, bursts * writers * appends)
    written: list[str] = []

    async def writer(burst: int, w: int) -> None:
        for k in range(appends):
            [e] = await store.append(StoredEvent(event_type="E", aggregate_id=f"p{burst}-{w}-{k}"))
            written.append(e.event_id)

    for burst in range(bursts):
        await asyncio.gather(*(writer(burst, w) for w in range(writers)))
    await asyncio.wait_for(task, 10)
    assert sorted(seen) == sorted(written)
    assert len(separate) <= bursts  # at most the end of each burst, never one per slot
