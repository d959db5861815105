"""SQLite half of the event store (also the portable fallback for other serialised databases).

Every SQLite transaction of the library starts with ``BEGIN IMMEDIATE`` (see
:mod:`cqrs_ddd_persistence_sqlalchemy.sqlite.engine`): one writer at a time, so checking the
stream version and then inserting cannot race, and position order is commit order — a
position cursor is commit-safe. There is no LISTEN; subscribers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.core.event_log import (
    Cursor,
    GlobalFilter,
    HorizonStatus,
    Ordering,
    not_tombstoned,
    select_page,
)
from cqrs_ddd_persistence_sqlalchemy.core.event_tables import events_table

__all__ = ["SerialEventLog"]

_INSERT = insert(events_table).returning(
    events_table.c.position, events_table.c.version, sort_by_parameter_order=True
)


class SerialEventLog:
    """Event log SQL for databases with one writer at a time."""

    ordering = Ordering.COMMIT_SAFE
    # Check-then-insert relies on the BEGIN IMMEDIATE write lock: never autocommit.
    autocommit_appends = False
    # The engine's begin hook issues BEGIN IMMEDIATE on every connection use; keep reads on
    # the session path there.
    autocommit_reads = False

    async def insert_autocommit(
        self,
        engine: AsyncEngine,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
    ) -> list[tuple[int, int]] | None:
        raise NotImplementedError("SQLite appends need the BEGIN IMMEDIATE transaction")

    async def read_autocommit(
        self, engine: AsyncEngine, stmt: Any, params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        raise NotImplementedError("SQLite reads run in the session's transaction")

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
        # ``guarded`` is moot here: one writer at a time, nothing can race the check.
        t = events_table.c
        current, blocked = (
            await conn.execute(
                select(
                    select(func.coalesce(func.max(t.version), 0))
                    .where(t.stream_id == stream_id)
                    .scalar_subquery(),
                    select(func.count()).where(t.event_id.in_(list(ids))).scalar_subquery()
                    + select(func.count()).where(~not_tombstoned(stream_id)).scalar_subquery(),
                )
            )
        ).one()
        if blocked or not version_range[0] <= current <= version_range[1]:
            return None
        params = [
            {
                "event_id": r.event_id,
                "stream_id": stream_id,
                "version": current + i,
                "event_type": r.event_type,
                "aggregate_type": r.aggregate_type,
                "schema_version": r.schema_version,
                "payload": r.payload,
                "metadata": r.metadata,
                "occurred_at": r.occurred_at,
                "correlation_id": r.correlation_id,
                "causation_id": r.causation_id,
                "tenant_id": r.tenant_id,
            }
            for i, r in enumerate(rows, start=1)
        ]
        result = await conn.execute(_INSERT, params)
        return [(int(p), int(v)) for p, v in result.all()]

    def page_query(self, after: Cursor, limit: int, flt: GlobalFilter) -> Select[Any]:
        t = events_table.c
        return select_page(t.position > after.position, [t.position], [], limit, flt)

    def cursor_of(self, row: Row[Any]) -> Cursor:
        return Cursor(0, int(row.position))

    @contextlib.asynccontextmanager
    async def listen(self, engine: AsyncEngine) -> AsyncIterator[asyncio.Event | None]:
        yield None

    async def horizon(self, session: AsyncSession) -> HorizonStatus:
        # Writers are serialised: a committed event is visible at once; nothing is held back.
        return HorizonStatus(horizon_txid=None, invisible_events=0)
