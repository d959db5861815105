"""Snapshot strategies, cursors and the compiled append / page statements (no database)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from cqrs_ddd_advanced_core.snapshots import EveryNEvents, NeverSnapshot
from cqrs_ddd_core.errors import ConfigurationError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import Cursor, GlobalFilter, Ordering
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.event_log import (
    _INSERTS,
    PostgresEventLog,
)

_INSERT = _INSERTS[False]


@pytest.mark.parametrize(
    ("prev", "new", "expected"),
    [(0, 9, False), (8, 12, True), (9, 10, True), (10, 19, False), (12, 35, True), (5, 5, False)],
)
def test_every_n_counts_crossings_not_modulo(prev: int, new: int, expected: bool) -> None:
    assert EveryNEvents(10).should_snapshot(previous_version=prev, new_version=new) is expected


def test_every_n_catches_up_a_missed_snapshot() -> None:
    strategy = EveryNEvents(10)
    assert strategy.should_snapshot(previous_version=21, new_version=22, last_snapshot_version=9)
    assert not NeverSnapshot().should_snapshot(previous_version=0, new_version=100)
    with pytest.raises(ConfigurationError):
        EveryNEvents(0)


@pytest.mark.parametrize(
    ("last", "prev", "new", "expected"),
    [
        (0, 0, 9, False),  # 9 events, no snapshot yet
        (0, 0, 10, True),
        (0, 8, 12, True),  # one save adding several events
        (12, 12, 20, False),  # crossing 20 does not count: 8 events since the snapshot at 12
        (12, 20, 21, False),
        (12, 20, 22, True),  # 10 events since the snapshot
        (12, 12, 35, True),
        (7, 7, 16, False),  # loaded from a snapshot at 7: counted from 7, not from 0 or 10
        (7, 16, 17, True),
        (30, 30, 30, False),  # nothing appended
        (0, 5, 5, False),
    ],
)
def test_every_n_counts_from_the_last_snapshot(
    last: int, prev: int, new: int, expected: bool
) -> None:
    strategy = EveryNEvents(10)
    decision = strategy.should_snapshot(
        previous_version=prev, new_version=new, last_snapshot_version=last
    )
    assert decision is expected


def test_every_n_snapshots_once_per_n_events_whatever_the_batch_sizes() -> None:
    strategy, last, version, taken = EveryNEvents(10), 0, 0, []
    for batch in [3, 4, 5, 1, 1, 12, 2, 9, 1, 30, 1]:
        new = version + batch
        if strategy.should_snapshot(
            previous_version=version, new_version=new, last_snapshot_version=last
        ):
            taken.append(new)
            last = new
        version = new
    assert taken == [12, 26, 37, 68]
    assert all(b - a >= 10 for a, b in zip([0, *taken], taken, strict=False))


def test_cursor_round_trip_and_bad_tokens() -> None:
    assert Cursor.decode(Cursor(12, 34).encode()) == Cursor(12, 34)
    assert Cursor.decode(None) == Cursor()
    assert Cursor.decode("17") == Cursor(0, 17)  # bare positions (SQLite / in-memory)
    with pytest.raises(InvalidValueError):
        Cursor.decode("x.y")


def test_append_is_one_insert_select_with_preconditions() -> None:
    sql = str(_INSERT.compile(dialect=postgresql.dialect()))
    assert sql.startswith("INSERT INTO cqrs_events")
    assert "jsonb_to_recordset(" in sql and "payload JSONB" in sql  # one JSON batch parameter
    assert "BETWEEN" in sql  # expected version checked in the same statement
    assert "cqrs_event_stream_tombstones" in sql
    assert "RETURNING cqrs_events.position, cqrs_events.version" in sql
    assert "ON CONFLICT" not in sql  # the store's own transaction: an error is fine there
    assert sql.count("pg_notify(") == 1 and "CASE WHEN" in sql  # once, when asked to
    guarded = str(_INSERTS[True].compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT DO NOTHING" in guarded and "pg_notify(" in guarded


def test_commit_safe_page_uses_horizon_and_composite_cursor() -> None:
    log = PostgresEventLog()
    sql = str(
        log.page_query(Cursor(5, 9), 10, GlobalFilter(event_types=("A",))).compile(
            dialect=postgresql.dialect()
        )
    )
    assert "pg_snapshot_xmin(pg_current_snapshot())" in sql
    assert "(cqrs_events.txid, cqrs_events.position) >" in sql
    assert "ORDER BY cqrs_events.txid, cqrs_events.position" in sql
    assert "cqrs_events.event_type IN" in sql
    locked = PostgresEventLog(ordering=Ordering.LOCK_TABLE).page_query(
        Cursor(0, 9), 10, GlobalFilter()
    )
    locked_sql = str(locked.compile(dialect=postgresql.dialect()))
    assert "pg_snapshot_xmin" not in locked_sql and "ORDER BY cqrs_events.position" in locked_sql


def test_hydrate_row_matches_hydrate_and_upcasts_old_rows() -> None:
    from datetime import UTC, datetime

    from cqrs_ddd_core.domain.event_registry import EventTypeRegistry
    from cqrs_ddd_core.domain.events import DomainEvent

    class RowProbeV2(DomainEvent, schema_version=2):
        amount: int
        currency: str

    registry = EventTypeRegistry()
    registry.register(RowProbeV2)
    registry.add_upcaster(RowProbeV2.__event_type__, 1, lambda d: {**d, "currency": "EUR"})
    at = datetime(2024, 1, 1, tzinfo=UTC)
    envelope = ("e-1", at, "agg-1", "Probe", {"m": 1}, "c-1", None)
    current = registry.hydrate_row(
        RowProbeV2.__event_type__, {"amount": 5, "currency": "USD"}, 2, *envelope
    )
    expected = registry.hydrate(
        RowProbeV2.__event_type__,
        {"amount": 5, "currency": "USD"},
        schema_version=2,
        envelope=dict(
            zip(
                (
                    "event_id",
                    "occurred_at",
                    "aggregate_id",
                    "aggregate_type",
                    "metadata",
                    "correlation_id",
                    "causation_id",
                ),
                envelope,
                strict=True,
            )
        ),
    )
    assert current == expected and current.version == 2
    old = registry.hydrate_row(RowProbeV2.__event_type__, {"amount": 7}, 1, *envelope)
    assert (old.currency, old.version, old.event_id) == ("EUR", 2, "e-1")  # type: ignore[attr-defined]


def test_hydrate_rows_matches_hydrate_row_row_by_row() -> None:
    """The page loop gives the same events as ``hydrate_row``: current and old schema versions
    mixed, JSON text decoded, every spelling of empty metadata left at its default, ids kept,
    and a payload that does not validate raises ``SerializationError``."""
    from datetime import UTC, datetime

    import orjson
    import pytest

    from cqrs_ddd_core.domain.event_registry import EventTypeRegistry
    from cqrs_ddd_core.domain.events import DomainEvent
    from cqrs_ddd_core.errors import SerializationError, UnknownEventTypeError
    from cqrs_ddd_persistence_sqlalchemy.eventstore.mapping import hydrate_rows

    class PageProbeV2(DomainEvent, schema_version=2):
        amount: int
        currency: str

    class PageNote(DomainEvent):
        text: str

    registry = EventTypeRegistry()
    registry.register(PageProbeV2)
    registry.register(PageNote)
    registry.add_upcaster(PageProbeV2.__event_type__, 1, lambda d: {**d, "currency": "EUR"})
    at = datetime(2024, 1, 1, 12, tzinfo=UTC)
    # (event_type, payload text, schema_version, event_id, at, aggregate, type, metadata,
    #  correlation, causation)
    rows = [
        (
            "PageProbeV2",
            '{"amount": 1, "currency": "USD"}',
            2,
            "e1",
            at,
            "a",
            "T",
            "{}",
            None,
            None,
        ),
        ("PageProbeV2", '{"amount": 2}', 1, "e2", at, "a", "T", '{"k": 1}', "c", "d"),
        ("PageNote", '{"text": "hi"}', 1, "e3", at, "a", None, None, "c", None),
        ("PageNote", '{"text": "yo"}', 1, "e4", at, "a", "T", "", None, "d"),
        ("PageNote", '{"text": "x"}', 1, "e5", at, "a", "T", '{"m": [1]}', None, None),
    ]
    page = hydrate_rows(registry, [_event_row(r) for r in rows])
    one_by_one = [
        registry.hydrate_row(
            r[0],
            orjson.loads(r[1]),
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            orjson.loads(r[7]) if r[7] else None,
            r[8],
            r[9],
        )
        for r in rows
    ]
    assert page == one_by_one
    assert [type(e) for e in page] == [PageProbeV2, PageProbeV2, PageNote, PageNote, PageNote]
    assert [e.version for e in page] == [2, 2, 1, 1, 1]
    assert page[1].currency == "EUR" and page[1].metadata == {"k": 1}  # type: ignore[attr-defined]
    assert (page[1].correlation_id, page[1].causation_id) == ("c", "d")
    assert page[0].metadata == {} and page[3].metadata == {} and page[2].metadata == {}
    assert page[4].metadata == {"m": [1]} and page[3].causation_id == "d"
    assert all(e.occurred_at == at for e in page)
    with pytest.raises(SerializationError):
        hydrate_rows(registry, [_event_row(("PageNote", '{"text": 5}', *rows[2][2:]))])
    with pytest.raises(UnknownEventTypeError):
        hydrate_rows(registry, [_event_row(("Nope", "{}", *rows[2][2:]))])


def _event_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row of ``event_text_columns()`` (by field name) from the short tuples above."""
    from cqrs_ddd_persistence_sqlalchemy.eventstore.mapping import FIELD_INDEX

    names = (
        "event_type",
        "payload",
        "schema_version",
        "event_id",
        "occurred_at",
        "aggregate_id",
        "aggregate_type",
        "metadata",
        "correlation_id",
        "causation_id",
    )
    row: list[Any] = [None] * len(FIELD_INDEX)
    for name, value in zip(names, r, strict=True):
        row[FIELD_INDEX[name]] = value
    return tuple(row)
