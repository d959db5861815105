"""Snapshot strategies, cursors and the compiled append / page statements (no database)."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql

from cqrs_ddd_advanced_core.snapshots import EveryNEvents, NeverSnapshot
from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.core.event_log import Cursor, GlobalFilter, Ordering
from cqrs_ddd_persistence_sqlalchemy.postgres.event_store import _INSERT, _INSERTS, PostgresEventLog


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
    with pytest.raises(ValueError):
        EveryNEvents(0)


def test_cursor_round_trip_and_bad_tokens() -> None:
    assert Cursor.decode(Cursor(12, 34).encode()) == Cursor(12, 34)
    assert Cursor.decode(None) == Cursor()
    assert Cursor.decode("17") == Cursor(0, 17)  # bare positions (SQLite / in-memory)
    with pytest.raises(InvalidValueError):
        Cursor.decode("x.y")


def test_append_is_one_insert_select_with_preconditions() -> None:
    sql = str(_INSERT.compile(dialect=postgresql.dialect()))
    assert sql.startswith("INSERT INTO cqrs_events")
    assert "json_to_recordset(" in sql and "payload JSONB" in sql  # one JSON batch parameter
    assert "BETWEEN" in sql  # expected version checked in the same statement
    assert "cqrs_event_stream_tombstones" in sql
    assert "RETURNING cqrs_events.position, cqrs_events.version" in sql
    assert "ON CONFLICT" not in sql  # the store's own transaction: an error is fine there
    guarded = str(_INSERTS[(True, True)].compile(dialect=postgresql.dialect()))
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
