"""SQLite half of the event store (also the portable fallback for other serialised databases).

Every SQLite transaction of the library starts with ``BEGIN IMMEDIATE`` (see
:mod:`~cqrs_ddd_persistence_sqlalchemy.dialects.sqlite.engine`): one writer at a time, so
checking the stream version and then inserting cannot race, and position order is commit
order — a position cursor is commit-safe. There is no LISTEN; subscribers poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select

from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import (
    Cursor,
    GlobalFilter,
    HorizonStatus,
    Ordering,
    not_tombstoned,
    select_page,
)
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table

__all__ = ["SerialEventLog"]

_INSERT = insert(events_table).returning(
    events_table.c.position, events_table.c.version, sort_by_parameter_order=True
)


def _check_statement() -> Select[Any]:
    """The stream's version, and how many of the batch's ids (or a tombstone) block it."""
    t = events_table.c
    stream = bindparam("stream_id", type_=t.stream_id.type)
    return select(
        select(func.coalesce(func.max(t.version), 0))
        .where(t.stream_id == stream)
        .scalar_subquery(),
        select(func.count())
        .where(t.event_id.in_(bindparam("ids", expanding=True, type_=t.event_id.type)))
        .scalar_subquery()
        + select(func.count()).where(~not_tombstoned(stream)).scalar_subquery(),
    )


# Built once: an expression built per append is compiled from its cache key each time, and its
# objects hold reference cycles that only the garbage collector frees.
_CHECK = _check_statement()


class SerialEventLog:
    """Event log SQL for databases with one writer at a time."""

    ordering = Ordering.COMMIT_SAFE
    # Check-then-insert relies on the BEGIN IMMEDIATE write lock: never autocommit.
    single_statement_append = False
    cursor_width = 1

    async def append(
        self,
        runner: StatementRunner,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
        *,
        guarded: bool,
        autocommit: bool,
    ) -> list[tuple[int, int]] | None:
        # ``guarded`` is moot here: one writer at a time, nothing can race the check.
        check = await runner.fetch(_CHECK, {"stream_id": stream_id, "ids": list(ids)})
        current, blocked = check[0]
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
        return [(int(p), int(v)) for p, v in await runner.fetch(_INSERT, params)]

    def page_query(self, after: Cursor, limit: int, flt: GlobalFilter) -> Select[Any]:
        t = events_table.c
        return select_page(t.position > after.position, [t.position], [], limit, flt)

    async def horizon(self, runner: StatementRunner) -> HorizonStatus:
        # Writers are serialised: a committed event is visible at once; nothing is held back.
        return HorizonStatus(horizon_txid=None, invisible_events=0)
