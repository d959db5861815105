"""What the event store asks of a dialect: batch insert, global pages, wake-ups.

The generic store (:mod:`cqrs_ddd_persistence_sqlalchemy.core.event_store`) does the mapping and
the expected-version bookkeeping; a :class:`EventLog` does the SQL that differs between
PostgreSQL (commit-safe ``xid8`` horizon, LISTEN/NOTIFY) and SQLite (serialised writers).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, Text, and_, cast, exists, select, true
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.core.event_tables import (
    events_table,
    stream_tombstones_table,
)

__all__ = [
    "Cursor",
    "EventLog",
    "GlobalFilter",
    "HorizonStatus",
    "Ordering",
    "event_columns",
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


def event_columns() -> list[Any]:
    """Columns of a stored event (everything but ``txid``)."""
    c = events_table.c
    return [
        c.position,
        c.event_id,
        c.stream_id,
        c.version,
        c.event_type,
        c.aggregate_type,
        c.schema_version,
        c.payload,
        c.metadata,
        c.occurred_at,
        c.correlation_id,
        c.causation_id,
        c.tenant_id,
    ]


def not_tombstoned(stream_id: Any) -> ColumnElement[bool]:
    return ~exists().where(stream_tombstones_table.c.stream_id == stream_id)


class EventLog(Protocol):
    """The dialect-specific half of the event store."""

    ordering: Ordering
    #: Whether an append in a transaction of the store's own may run as one autocommit
    #: statement (no BEGIN/COMMIT round trips): the append must be a single statement.
    autocommit_appends: bool
    #: Whether a one-statement read outside any unit of work may run in autocommit.
    autocommit_reads: bool

    async def insert_batch(
        self,
        conn: AsyncConnection,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
        *,
        guarded: bool = True,
    ) -> list[tuple[int, int]] | None:
        """Insert ``rows`` if the stream version is within ``version_range`` (inclusive), no
        event id is stored yet and the stream is not tombstoned (and wake subscribers, where
        supported). Returns ``(position, version)`` per row in order, or ``None`` when a
        precondition failed (then nothing was drawn). ``guarded``: a lost race must not spoil
        the (caller's) transaction."""
        ...

    async def insert_autocommit(
        self,
        engine: AsyncEngine,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
    ) -> list[tuple[int, int]] | None:
        """:meth:`insert_batch` (unguarded) as one autocommit statement on a connection of
        ``engine``'s pool; only called when :attr:`autocommit_appends`."""
        ...

    async def read_autocommit(
        self, engine: AsyncEngine, stmt: Any, params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Rows of a module-level read statement in autocommit on a connection of
        ``engine``'s pool; only called when :attr:`autocommit_reads`."""
        ...

    def page_query(self, after: Cursor, limit: int, flt: GlobalFilter) -> Select[Any]:
        """The statement of one page of the global log (cursor columns last)."""
        ...

    def cursor_of(self, row: Row[Any]) -> Cursor: ...

    def listen(self, engine: AsyncEngine) -> AbstractAsyncContextManager[asyncio.Event | None]:
        """An iterator yielding once per wake-up hint (or never, when unsupported)."""
        ...

    async def horizon(self, session: AsyncSession) -> HorizonStatus: ...


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


def page_cursor(
    rows: Sequence[Row[Any]], limit: int, flt: GlobalFilter, cursor_of: Any
) -> tuple[list[Row[Any]], Cursor | None]:
    """The event rows of a :func:`select_page` result and the cursor to go on from."""
    if not flt.active:
        return list(rows), cursor_of(rows[-1]) if rows else None
    events = [r for r in rows if r.position is not None]
    if len(events) == limit:
        return events, cursor_of(events[-1])
    if not rows:
        return events, None  # nothing readable after the cursor at all
    tip = rows[0]
    if "tip_1" in tip._fields:
        return events, Cursor(int(tip.tip_0), int(tip.tip_1))
    return events, Cursor(0, int(tip.tip_0))
