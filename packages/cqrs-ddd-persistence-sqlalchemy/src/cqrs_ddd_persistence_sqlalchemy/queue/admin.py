"""Administration of a durable queue: dead letters, requeue, purge, statistics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select, update

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.queue.base import QueueBase
from cqrs_ddd_persistence_sqlalchemy.queue.claims import QueueStats
from cqrs_ddd_persistence_sqlalchemy.tables.queue import (
    DEAD,
    DONE,
    PENDING,
    PENDING_SQL,
    STATUS_SQL,
)

__all__ = ["QueueAdmin"]


class QueueAdmin(QueueBase):
    """The administrative verbs of :class:`~.durable.DurableQueue` (its base class)."""

    async def dead_letters(
        self,
        limit: int = 100,
        *,
        where: ColumnElement[bool] | None = None,
        uow: Any = None,
    ) -> list[Mapping[str, Any]]:
        """Dead rows, oldest first."""
        t = self.table
        stmt = select(t).where(t.c.status == STATUS_SQL[DEAD])
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.order_by(t.c.id).limit(limit)
        async with self.transaction(uow) as executor:
            return [dict(r) for r in await executor.fetch_mappings(stmt)]

    async def requeue(
        self,
        ids: Iterable[int] | None = None,
        *,
        where: ColumnElement[bool] | None = None,
        reset_attempts: bool = True,
        uow: Any = None,
    ) -> int:
        """Bring dead rows (all, or ``ids`` / ``where``) back to pending, due now."""
        t = self.table
        values: dict[str, Any] = {
            "status": PENDING,
            "available_at": self.clock(),
            "finished_at": None,
            "lease_token": None,
            "locked_until": None,
        }
        if reset_attempts:
            values["attempts"] = 0
        stmt = update(t).where(t.c.status == STATUS_SQL[DEAD]).values(**values).returning(t.c.id)
        if ids is not None:
            stmt = stmt.where(t.c.id.in_(list(ids)))
        if where is not None:
            stmt = stmt.where(where)
        async with self.transaction(uow) as executor:
            return len(await executor.fetch(stmt))

    async def purge(
        self,
        older_than: timedelta,
        *,
        statuses: Sequence[str] = (DONE,),
        uow: Any = None,
    ) -> int:
        """Delete finished rows (default: done) finished more than ``older_than`` ago."""
        if PENDING in statuses:
            raise ConfigurationError("purge never deletes pending rows")
        unknown = sorted(set(statuses) - {DONE, DEAD})
        if unknown:
            raise ConfigurationError(f"purge: unknown statuses {unknown} (done, dead)")
        t = self.table
        cutoff = self.clock() - older_than
        # The statuses inline, not bound: a partial index of finished rows is then usable.
        stmt = (
            delete(t)
            .where(t.c.status.in_([STATUS_SQL[s] for s in statuses]), t.c.finished_at < cutoff)
            .returning(t.c.id)
        )
        async with self.transaction(uow) as executor:
            return len(await executor.fetch(stmt))

    async def stats(self, *, uow: Any = None) -> QueueStats:
        """Counts per state and the lag of the oldest due, unclaimed row."""
        t = self.table
        now = self.clock()
        leased = and_(t.c.lease_token.is_not(None), t.c.locked_until > now)
        counts = select(t.c.status, func.count()).group_by(t.c.status)
        leased_q = select(func.count()).where(t.c.status == PENDING_SQL, leased)
        scheduled_q = select(func.count()).where(
            t.c.status == PENDING_SQL, t.c.available_at > now, ~leased
        )
        oldest_q = select(func.min(t.c.available_at)).where(self.due_condition(now))
        async with self.transaction(uow) as executor:
            by_status: dict[str, int] = {
                row[0]: int(row[1]) for row in await executor.fetch(counts)
            }
            n_leased = int((await executor.fetch(leased_q))[0][0])
            n_scheduled = int((await executor.fetch(scheduled_q))[0][0])
            oldest: datetime | None = (await executor.fetch(oldest_q))[0][0]
        pending = by_status.get(PENDING, 0)
        lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return QueueStats(
            pending=pending,
            leased=n_leased,
            scheduled=n_scheduled,
            done=by_status.get(DONE, 0),
            dead=by_status.get(DEAD, 0),
            oldest_due_at=oldest,
            lag_seconds=lag,
        )
