"""The event log's shared vocabulary: cursor, filters, horizon status and the page shape.

Both dialect halves of the event log (``dialects/postgresql/event_log.py``,
``dialects/sqlite/event_log.py``) and the generic store (``eventstore``) speak it: the
dialect builds the statements, the store maps rows to events and keeps the cursor.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, exists, select, true

from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.tables.events import (
    EVENT_FIELDS,
    events_table,
    stream_tombstones_table,
)

__all__ = [
    "Cursor",
    "GlobalFilter",
    "HorizonHolder",
    "HorizonStatus",
    "Ordering",
    "cursor_of",
    "event_columns",
    "event_text_columns",
    "not_tombstoned",
    "page_cursor",
    "select_page",
]


class Ordering(enum.Enum):
    """How global positions become a commit-ordered log.

    ``COMMIT_SAFE`` (default): writers never wait for each other; readers only see rows below the
    transaction-id horizon and page by ``(txid, position)``. ``LOCK_TABLE``: every append takes
    ``LOCK TABLE … IN EXCLUSIVE MODE`` until commit, so positions are handed out in commit order
    and a position-only cursor is safe (writers are serialised: slower, but external consumers
    can rely on increasing positions). Only meaningful on PostgreSQL; SQLite serialises writers
    anyway.
    """

    COMMIT_SAFE = "commit_safe"
    LOCK_TABLE = "lock_table"


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Position in the global log: everything ``<= (txid, position)`` has been read."""

    txid: int = 0
    position: int = 0

    def encode(self) -> str:
        return f"{self.txid}.{self.position}"

    @classmethod
    def decode(cls, token: str | None) -> Cursor:
        if not token:
            return cls()
        try:
            head, sep, tail = token.partition(".")
            if not sep:  # a bare position (SQLite / lock-table logs, in-memory stores)
                return cls(0, int(head))
            return cls(int(head), int(tail))
        except ValueError:
            raise InvalidValueError(f"invalid event store cursor {token!r}") from None


@dataclass(frozen=True, slots=True)
class GlobalFilter:
    """Optional filters of global reads (they narrow results; the cursor order is unchanged)."""

    event_types: tuple[str, ...] | None = None
    aggregate_types: tuple[str, ...] | None = None
    tenant_id: str | None = None

    def clause(self) -> ColumnElement[bool]:
        t = events_table.c
        parts: list[ColumnElement[bool]] = []
        if self.event_types is not None:
            parts.append(t.event_type.in_(self.event_types))
        if self.aggregate_types is not None:
            parts.append(t.aggregate_type.in_(self.aggregate_types))
        if self.tenant_id is not None:
            parts.append(t.tenant_id == self.tenant_id)
        return and_(true(), *parts)

    @property
    def active(self) -> bool:
        return (
            self.event_types is not None
            or self.aggregate_types is not None
            or self.tenant_id is not None
        )


@dataclass(frozen=True, slots=True)
class HorizonStatus:
    """How far committed events are held back from global readers (PostgreSQL).

    ``invisible_events`` counts stored rows at or above the horizon (committed or not yet);
    ``oldest_xact_age_s`` / ``oldest_pid`` name the oldest transaction holding the horizon back.
    A horizon that stays put while ``oldest_xact_age_s`` grows is a stalled subscriber feed.
    """

    horizon_txid: int | None
    invisible_events: int
    oldest_xact_age_s: float | None = None
    oldest_pid: int | None = None
    oldest_xact_started: datetime | None = None


@dataclass(frozen=True, slots=True)
class HorizonHolder:
    """The database session whose open transaction holds the horizon back (PostgreSQL): the
    one an operator ends (``pg_terminate_backend(pid)``) or goes to ask about.

    Every text field comes from the server as the session reported it (its application name,
    its current query): untrusted text, to be escaped wherever it is shown.
    """

    pid: int
    user: str | None
    application: str | None
    client: str | None
    state: str | None
    xact_started: datetime | None
    xact_age_s: float | None
    query: str | None


def event_columns() -> list[Any]:
    """Columns of a stored event (everything but ``txid``), in :data:`EVENT_FIELDS` order."""
    c = events_table.c
    return [c[name] for name in EVENT_FIELDS]


def not_tombstoned(stream_id: Any) -> ColumnElement[bool]:
    return ~exists().where(stream_tombstones_table.c.stream_id == stream_id)


def event_text_columns() -> list[Any]:
    """:func:`event_columns` with payload and metadata as JSON text (decoded by the caller).

    The JSONB decoder SQLAlchemy installs on asyncpg connections is a Python call per value
    made from asyncpg's C code; its allocations triggered ~60% more garbage collections on
    bulk reads than decoding the text in Python (``serialization.json_loads``).
    """
    return [
        cast(c, Text).label(c.name) if c.name in ("payload", "metadata") else c
        for c in event_columns()
    ]


def select_page(
    after_clause: ColumnElement[bool],
    order_by: Sequence[Any],
    extra: Sequence[Any],
    limit: int,
    flt: GlobalFilter,
) -> Select[Any]:
    """One page of the global log after ``after_clause`` (the readable region), in order.

    With a filter the statement also returns the *tip* — the cursor of the last row of the
    whole readable region, matching or not — as ``tip_0``, ``tip_1``… on every row, and one
    row with only the tip when nothing matches. A reader whose page is not full has seen every
    matching row up to the tip and moves its cursor there; otherwise a subscriber for rare
    event types would rescan every non-matching row after its last match on each poll. Page
    and tip come from one statement, so from one snapshot: a row the page could not see (not
    yet below the horizon) cannot be behind the tip either.
    """
    page = select(*event_text_columns(), *extra).where(after_clause, flt.clause())
    if not flt.active:
        return page.order_by(*order_by).limit(limit)
    rows = page.order_by(*order_by).limit(limit).subquery("page")
    tip = (
        select(*(c.label(f"tip_{i}") for i, c in enumerate(order_by)))
        .where(after_clause)
        .order_by(*(c.desc() for c in order_by))
        .limit(1)
        .subquery("tip")
    )
    return (
        select(rows, tip)
        .select_from(tip.outerjoin(rows, true()))
        .order_by(*(rows.c[c.name] for c in order_by))
    )


#: Where a page row's cursor columns start: right after the event columns.
_CURSOR_AT = len(EVENT_FIELDS)


def cursor_of(row: Sequence[Any], width: int) -> Cursor:
    """The cursor of a page row: ``(txid, position)`` when the page is ordered by both
    (``width == 2``), the position alone otherwise."""
    if width == 2:
        return Cursor(int(row[_CURSOR_AT]), int(row[0]))
    return Cursor(0, int(row[0]))


def page_cursor(
    rows: Sequence[Sequence[Any]], limit: int, flt: GlobalFilter, width: int
) -> tuple[list[Sequence[Any]], Cursor | None]:
    """The event rows of a :func:`select_page` result and the cursor to go on from.

    Rows are read by position: the event columns (:data:`EVENT_FIELDS`), then the page's
    extra cursor columns (``txid`` when ``width == 2``), then — with a filter — the tip.
    """
    if not flt.active:
        return list(rows), cursor_of(rows[-1], width) if rows else None
    events = [r for r in rows if r[0] is not None]
    if len(events) == limit:
        return events, cursor_of(events[-1], width)
    if not rows:
        return events, None  # nothing readable after the cursor at all
    tip = rows[0]
    if width == 2:
        return events, Cursor(int(tip[-2]), int(tip[-1]))
    return events, Cursor(0, int(tip[-1]))
