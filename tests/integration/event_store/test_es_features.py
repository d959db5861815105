"""Event store features beyond the contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from sqlalchemy import Integer, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core import AggregateRoot, DomainEvent, StoredEvent, StreamState
from cqrs_ddd_core.errors import (
    ConfigurationError,
    InvalidValueError,
    NotFoundError,
    UniqueViolationError,
    WrongExpectedVersionError,
)
from cqrs_ddd_core.testing.event_store_contract import read_all_until
from cqrs_ddd_persistence_sqlalchemy.core import (
    Ordering,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    events_table,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import Cursor

SF = async_sessionmaker[AsyncSession]


class EsItemAdded(DomainEvent):
    sku: str
    qty: int


class EsCart(AggregateRoot[str]):
    id: str
    items: dict[str, int] = {}

    def add(self, sku: str, qty: int) -> None:
        self.add_event(EsItemAdded(sku=sku, qty=qty))


def _ev(stream: str, kind: str = "EsThing", **kw: Any) -> StoredEvent:
    return StoredEvent(event_type=kind, aggregate_id=stream, aggregate_type="Thing", **kw)


@pytest.fixture
def store(library_tables: AsyncEngine, session_factory: SF) -> SQLAlchemyEventStore:
    return SQLAlchemyEventStore(session_factory, poll_interval=0.05)


async def test_seed_example_single_event_without_uow(store: SQLAlchemyEventStore) -> None:
    event = StoredEvent(
        event_id="evt-123",
        event_type="OrderCreated",
        aggregate_id="order-456",
        payload={"customer_id": "cust-789"},
    )
    [stored] = await store.append(event)
    assert (stored.version, stored.position is not None) == (1, True)
    events = await store.get_events("order-456")
    assert [e.payload for e in events] == [{"customer_id": "cust-789"}]
    assert await store.append(event) == [stored]  # idempotent retry, stored once
    assert await store.get_version("order-456") == 1


async def test_partial_retry_is_refused_and_error_names_versions(
    store: SQLAlchemyEventStore,
) -> None:
    first = _ev("s1")
    await store.append(first)
    with pytest.raises(UniqueViolationError):
        await store.append([_ev("s1"), first], expected_version=StreamState.ANY)
    with pytest.raises(WrongExpectedVersionError) as info:
        await store.append(_ev("s1"), expected_version=StreamState.NO_STREAM)
    assert (info.value.stream_id, info.value.actual_version) == ("s1", 1)
    assert await store.get_version("s1") == 1


async def test_uow_sink_appends_saved_aggregates_events_in_the_same_transaction(
    store: SQLAlchemyEventStore, session_factory: SF
) -> None:
    cart = EsCart(id="cart-1")
    cart.add("apple", 2)
    cart.add("pear", 1)
    async with SQLAlchemyUnitOfWork(session_factory, event_sinks=[store]) as uow:
        uow.register(cart)
    assert await store.get_version("cart-1") == 0  # rolled back: nothing written
    async with SQLAlchemyUnitOfWork(session_factory, event_sinks=[store]) as uow:
        uow.register(cart)
        await uow.commit()
    typed = await store.load_events("cart-1")
    assert [type(e) for e in typed] == [EsItemAdded, EsItemAdded]
    assert [e.sku for e in typed if isinstance(e, EsItemAdded)] == ["apple", "pear"]


async def test_tombstone_keeps_numbers_and_refuses_appends(store: SQLAlchemyEventStore) -> None:
    a = await store.append([_ev("keep"), _ev("keep")])
    gone = await store.append([_ev("gone"), _ev("gone")])
    b = await store.append(_ev("keep"))
    await store.archive_stream("gone", reason="gdpr")
    assert await store.get_events("gone") == []
    assert not await store.stream_exists("gone") and await store.stream_exists("keep")
    with pytest.raises(NotFoundError):
        await store.append(_ev("gone"))
    page, _ = await read_all_until(store, {e.event_id for e in [*a, *gone, *b]})
    assert {e.event_id for e in gone} <= {e.event_id for e in page}  # soft: history stays
    await store.delete_stream("gone", hard=True)
    page, _ = await read_all_until(store, {e.event_id for e in [*a, *b]})
    assert [e.position for e in page] == [e.position for e in [*a, *b]]
    assert [e.version for e in await store.get_events("keep")] == [1, 2, 3]


async def test_read_all_filters_by_type_category_and_tenant(store: SQLAlchemyEventStore) -> None:
    s1 = await store.append([_ev("f1", "A", tenant_id="t1"), _ev("f1", "B", tenant_id="t1")])
    s2 = await store.append(
        StoredEvent(event_type="A", aggregate_id="g1", aggregate_type="Other", tenant_id="t2")
    )
    await read_all_until(store, {e.event_id for e in [*s1, *s2]})
    by_type, _ = await store.read_all(event_types=["A"])
    assert [e.aggregate_id for e in by_type] == ["f1", "g1"]
    by_category, _ = await store.read_all(aggregate_types=["Other"])
    assert [e.aggregate_id for e in by_category] == ["g1"]
    by_tenant, _ = await store.read_all(tenant_id="t1")
    assert [e.event_type for e in by_tenant] == ["A", "B"]


async def test_subscribe_tails_new_events(store: SQLAlchemyEventStore) -> None:
    await store.append(_ev("tail"))
    seen: list[str] = []

    async def consume() -> None:
        # aclosing: leaving the loop early closes the subscription (and its LISTEN connection)
        # now, not whenever the generator is garbage-collected.
        async with contextlib.aclosing(store.subscribe()) as events:
            async for event in events:
                seen.append(event.event_id)
                if len(seen) == 3:
                    return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await store.append([_ev("tail"), _ev("tail")])
    await asyncio.wait_for(task, 10)
    assert len(seen) == 3


async def test_subscribe_stops_when_caught_up_with_polling_and_listen_off(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, listen=False, poll_interval=None, notify=False)
    stored = await store.append([_ev("c"), _ev("c")])
    await read_all_until(store, {e.event_id for e in stored})  # past any horizon hold-up
    got = [e async for e in store.subscribe(batch_size=1)]
    assert len(got) == 2


async def test_horizon_lag_reports(store: SQLAlchemyEventStore, dialect_name: str) -> None:
    await store.append(_ev("h"))
    status = await store.horizon_lag()
    if dialect_name == "sqlite":
        assert status.invisible_events == 0 and status.horizon_txid is None
    else:
        assert status.horizon_txid is not None


@pytest.mark.postgres_only
async def test_open_transaction_holds_back_readers_and_shows_in_horizon(
    store: SQLAlchemyEventStore, session_factory: SF
) -> None:
    # The transaction holding an xid draws its position first and commits last.
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        slow = await store.append(_ev("slow"), uow=uow)
        fast = await store.append(_ev("fast"))
        assert fast[0].position is not None and slow[0].position is not None
        assert fast[0].position > slow[0].position
        page, cursor = await store.read_all(limit=100)
        # Committed, yet held back behind the open transaction: a position cursor would move
        # past ``slow`` here and skip it for ever.
        assert fast[0].event_id not in {e.event_id for e in page}
        status = await store.horizon_lag()
        assert status.invisible_events >= 1 and status.oldest_pid is not None
        await uow.commit()
    ids = [slow[0].event_id, fast[0].event_id]
    rest, _ = await read_all_until(store, set(ids), after=cursor)
    assert [e.event_id for e in rest if e.event_id in ids] == ids


@pytest.mark.postgres_only
async def test_lock_table_mode_orders_by_position(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, ordering=Ordering.LOCK_TABLE)
    stored = await store.append([_ev("lk"), _ev("lk")])
    page, cursor = await read_all_until(store, {e.event_id for e in stored})
    assert [e.position for e in page] == [e.position for e in stored]
    assert cursor == str(stored[-1].position) or cursor.endswith(f".{stored[-1].position}")


async def test_append_inside_uow_is_invisible_until_commit(
    store: SQLAlchemyEventStore, session_factory: SF
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.append(_ev("u1"))  # ambient
        await store.append(_ev("u1"), expected_version=1)
        assert await store.get_version("u1") == 2  # same transaction sees it
        await uow.commit()
    assert await store.get_version("u1") == 2
    async with session_factory() as s:
        count = (
            await s.execute(select(events_table.c.position).where(events_table.c.stream_id == "u1"))
        ).all()
    assert len(count) == 2


class _Other(DeclarativeBase):
    pass


class EsSideRow(_Other):
    __tablename__ = "es_side_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


def _unique() -> str:
    return uuid.uuid4().hex


@pytest.mark.postgres_only
async def test_listen_wakes_subscriber_without_polling(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, poll_interval=None)  # NOTIFY is the only wake
    seen: list[str] = []

    async def consume() -> None:
        async with contextlib.aclosing(store.subscribe()) as events:
            async for event in events:
                seen.append(event.event_id)
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)  # subscriber is LISTENing and idle
    [stored] = await store.append(_ev("woken"))
    await asyncio.wait_for(task, 10)
    assert seen == [stored.event_id]


class EsPriced(DomainEvent, schema_version=2):
    amount: int
    currency: str


async def test_load_events_upcasts_old_payloads(store: SQLAlchemyEventStore) -> None:
    store.registry.add_upcaster("EsPriced", 1, lambda p: {**p, "currency": "EUR"})
    await store.append(
        StoredEvent(
            event_type="EsPriced", aggregate_id="p1", payload={"amount": 5}, schema_version=1
        )
    )
    [event] = await store.load_events("p1")
    assert isinstance(event, EsPriced) and event.currency == "EUR" and event.version == 2


@pytest.mark.parametrize("channel", ["", "x" * 64, "é" * 32])
def test_channel_name_too_long_is_a_configuration_error(session_factory: SF, channel: str) -> None:
    with pytest.raises(ConfigurationError, match="63 bytes"):
        SQLAlchemyEventStore(session_factory, channel=channel)
    SQLAlchemyEventStore(session_factory, channel="c" * 63)  # the longest accepted


async def _visible(store: SQLAlchemyEventStore, events: list[StoredEvent]) -> None:
    """Wait until global readers see ``events`` (the horizon may be held by other sessions)."""
    seen, _ = await read_all_until(store, {e.event_id for e in events}, limit=1000)
    assert {e.event_id for e in events} <= {e.event_id for e in seen}


async def test_filtered_read_moves_the_cursor_past_rows_that_do_not_match(
    store: SQLAlchemyEventStore,
) -> None:
    """A reader of rare event types does not rescan the log after its last match."""
    rare = await store.append([_ev("rare-1", "EsRare") for _ in range(2)])
    common = await store.append([_ev("common-1", "EsCommon") for _ in range(50)])
    await _visible(store, rare + common)
    page, cursor = await store.read_all(event_types=["EsRare"], limit=10)
    assert [e.event_type for e in page] == ["EsRare", "EsRare"]
    # The cursor is at the end of the readable log, not at the last match.
    assert cursor is not None
    assert Cursor.decode(cursor).position >= max(e.position or 0 for e in common)
    empty, same = await store.read_all(after=cursor, event_types=["EsRare"], limit=10)
    assert (empty, same) == ([], cursor)
    more = await store.append([_ev("common-2", "EsCommon") for _ in range(5)])
    await _visible(store, more)
    empty, moved = await store.read_all(after=cursor, event_types=["EsRare"], limit=10)
    assert empty == [] and moved != cursor
    late = await store.append(_ev("rare-2", "EsRare"))
    await _visible(store, late)
    page, _ = await store.read_all(after=moved, event_types=["EsRare"], limit=10)
    assert [e.event_id for e in page] == [late[0].event_id]
    # A full page still stops at its last row.
    page, full = await store.read_all(event_types=["EsCommon"], limit=3)
    assert full is not None
    assert len(page) == 3 and Cursor.decode(full).position == page[-1].position


async def test_filtered_reader_never_skips_an_event_held_back_by_an_open_transaction(
    store: SQLAlchemyEventStore, session_factory: SF, dialect_name: str
) -> None:
    """The tip comes from the same snapshot as the page: it never passes a late commit."""
    if dialect_name == "sqlite":
        pytest.skip("SQLite serialises writers: no transaction can commit late")
    warm = await store.append(_ev("warm", "EsCommon"))
    await _visible(store, warm)
    _, cursor = await store.read_all(event_types=["EsRare"])
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        [held] = await store.append(_ev("held", "EsRare"), uow=uow)
        after = await store.append([_ev("after-held", "EsCommon") for _ in range(20)])
        for _ in range(5):  # however often it polls meanwhile, it must not pass ``held``
            page, cursor = await store.read_all(after=cursor, event_types=["EsRare"])
            assert page == []
            await asyncio.sleep(0.02)
        await uow.commit()
    await _visible(store, [held, *after])
    page, _ = await store.read_all(after=cursor, event_types=["EsRare"])
    assert [e.event_id for e in page] == [held.event_id]


@pytest.mark.parametrize("in_uow", [False, True], ids=["own-transaction", "in-uow"])
async def test_batch_fields_shared_or_varying_round_trip(
    store: SQLAlchemyEventStore, session_factory: SF, in_uow: bool
) -> None:
    """A batch whose events share some fields and differ in others (including None next to a
    value, and equal-but-distinct metadata dicts) is stored field for field as given: the
    PostgreSQL append sends a shared value once and the varying ones per event."""
    from datetime import UTC, datetime, timedelta

    at = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    shared_meta = {"source": "batch"}
    mixed = [
        StoredEvent(
            event_type=kind,
            aggregate_id="mixed",
            aggregate_type=agg,
            schema_version=schema,
            payload={"i": i},
            metadata=meta,
            occurred_at=at + timedelta(microseconds=i),
            correlation_id=corr,
            causation_id="cause",
            tenant_id=None,
        )
        for i, (kind, agg, schema, meta, corr) in enumerate(
            [
                ("A", "Thing", 1, {"k": 1}, None),
                ("B", None, 2, {}, "c-1"),
                ("A", "Thing", 1, dict(shared_meta), "c-2"),
                ("C", "Other", 3, {"k": [1, "x"]}, None),
            ]
        )
    ]
    uniform = [
        StoredEvent(
            event_type="U",
            aggregate_id="uniform",
            aggregate_type="Thing",
            payload={"i": i},
            metadata=dict(shared_meta),  # equal, not the same object
            occurred_at=at,
            tenant_id="t-1",
        )
        for i in range(3)
    ]
    fields = (
        "event_id",
        "event_type",
        "aggregate_type",
        "schema_version",
        "payload",
        "metadata",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "tenant_id",
    )
    for batch in (mixed, uniform):
        if in_uow:
            async with SQLAlchemyUnitOfWork(session_factory) as uow:
                returned = await store.append(batch, expected_version=StreamState.NO_STREAM)
                await uow.commit()
        else:
            returned = await store.append(batch, expected_version=StreamState.NO_STREAM)
        stored = await store.get_events(batch[0].aggregate_id)
        assert [e.version for e in stored] == list(range(1, len(batch) + 1))
        assert [e.position for e in stored] == [e.position for e in returned]
        for given, got in zip(batch, stored, strict=True):
            assert {f: getattr(got, f) for f in fields} == {f: getattr(given, f) for f in fields}


async def test_append_of_a_domain_event_is_a_library_error_and_writes_nothing(
    store: SQLAlchemyEventStore,
) -> None:
    stored = _ev("wrong-type")
    domain = EsItemAdded(sku="a", qty=1, aggregate_id="wrong-type")
    with pytest.raises(InvalidValueError, match="StoredEvent"):
        await store.append([stored, domain])  # type: ignore[list-item]
    with pytest.raises(InvalidValueError, match="EsItemAdded"):
        await store.append(domain)  # type: ignore[arg-type]
    assert await store.get_events("wrong-type") == []


async def test_a_batch_over_two_streams_or_with_a_repeated_id_is_refused_whole(
    store: SQLAlchemyEventStore,
) -> None:
    with pytest.raises(InvalidValueError, match="one stream"):
        await store.append([_ev("batch-a"), _ev("batch-a"), _ev("batch-b")])
    twice = _ev("batch-a")
    with pytest.raises(InvalidValueError, match="duplicate event ids"):
        await store.append([twice, _ev("batch-a"), twice])
    assert await store.get_events("batch-a") == []
    assert await store.get_events("batch-b") == []
