"""Administration of background jobs: look-ups, cancellation, counts, stalled jobs, and the
queue's ``dead_letters / requeue / purge / stats``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, func, select, update

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobStatus
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed
from cqrs_ddd_persistence_sqlalchemy.jobs.base import JobStore
from cqrs_ddd_persistence_sqlalchemy.queue import DEAD, DONE, PENDING, PENDING_SQL, QueueStats
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["JobAdmin"]

J = TypeVar("J", bound=BackgroundJob)


class JobAdmin(JobStore[J]):
    """The administrative verbs of :class:`~.repository.SQLAlchemyBackgroundJobRepository`
    (its base class)."""

    async def get(self, job_id: str, *, uow: SQLAlchemyUnitOfWork | None = None) -> J | None:
        """The job with ``job_id`` and its current status, or ``None``."""
        t = self.table
        now = self.clock()
        stmt = select(t, self.status_expression(now).label("job_status")).where(
            t.c.job_id == str(job_id)
        )
        async with self._transaction(uow) as executor:
            rows = await executor.fetch_mappings(stmt)
        if not rows:
            return None
        row = rows[0]
        cls = self.job_types().get(row["job_type"])
        if cls is None:
            raise ConfigurationError(
                f"job {job_id} has type {row['job_type']!r}, unknown to {self.job_cls.__name__}"
            )
        return self._load(cls, row, JobStatus(row["job_status"]))

    async def cancel(
        self, job_id: str, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> JobStatus | None:
        """Cancel a job: a waiting one at once (CANCELLED); a running one is asked to stop
        (it sees ``cancel_requested`` at its next heartbeat; RUNNING is returned)."""
        t = self.table
        now = self.clock()
        at_once = (
            update(t)
            .where(t.c.job_id == str(job_id), t.c.status == PENDING, self._not_leased(now))
            .values(
                status=DONE,
                cancelled_at=now,
                finished_at=now,
                cancel_requested=True,
                lease_token=None,
                locked_until=None,
                updated_at=now,
            )
            .returning(t.c.id)
        )
        request = (
            update(t)
            .where(t.c.job_id == str(job_id), t.c.status == PENDING)
            .values(cancel_requested=True, updated_at=now)
            .returning(t.c.id)
        )
        async with self._transaction(uow) as executor:
            if await executor.fetch(at_once):
                return JobStatus.CANCELLED
            if await executor.fetch(request):
                return JobStatus.RUNNING
            current = await executor.fetch(
                select(self.status_expression(now)).where(t.c.job_id == str(job_id))
            )
        return JobStatus(current[0][0]) if current else None

    async def count_by_status(
        self, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> dict[JobStatus, int]:
        """Number of jobs per status (every status present, zeros included)."""
        expr = self.status_expression().label("s")
        stmt = select(expr, func.count()).group_by(expr)
        async with self._transaction(uow) as executor:
            rows = await executor.fetch(stmt)
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def count_by_type(
        self, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> dict[str, dict[JobStatus, int]]:
        """Number of jobs per job type and status (a type's statuses without jobs left out),
        types in name order; every type stored, known to this repository or not."""
        t = self.table
        expr = self.status_expression().label("s")
        stmt = (
            select(t.c.job_type, expr, func.count())
            .group_by(t.c.job_type, expr)
            .order_by(t.c.job_type)
        )
        async with self.queue.transaction(uow) as executor:
            rows = await executor.fetch(stmt)
        counts: dict[str, dict[JobStatus, int]] = {}
        for job_type, status, count in rows:
            counts.setdefault(job_type, {})[JobStatus(status)] = int(count)
        return counts

    async def stalled(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> tuple[int, float | None]:
        """Jobs whose worker stopped heartbeating (lease expired, not yet recovered), and the
        age in seconds of the oldest expired lease (``None`` without any)."""
        t = self.table
        now = self.clock()
        stmt = select(func.count(), func.min(t.c.locked_until)).where(self._expired(now))
        async with self._transaction(uow) as executor:
            ((count, oldest),) = await executor.fetch(stmt)
        return int(count), (now - oldest).total_seconds() if oldest is not None else None

    def _expired(self, now: datetime) -> ColumnElement[bool]:
        t = self.table
        # ``'pending'`` inline: the claim order's partial index (pending rows) serves it.
        return and_(
            t.c.status == PENDING_SQL, t.c.lease_token.is_not(None), t.c.locked_until <= now
        )

    async def recover_stalled(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> int:
        """Count an attempt for jobs whose worker died (lease expired) and free them — or
        dead-letter them when that was their last attempt. Returns how many were recovered.

        Expired leases are re-claimable anyway; recovering them first makes a job that keeps
        killing its worker end up DEAD instead of looping forever.
        """
        t = self.table
        now = self.clock()
        expired = self._expired(now)
        common = {"lease_token": None, "locked_until": None, "updated_at": now}
        error = "worker lost (lease expired)"
        to_dead = (
            update(t)
            .where(expired, t.c.attempts + 1 >= t.c.max_attempts)
            .values(
                status=DEAD, finished_at=now, attempts=t.c.attempts + 1, last_error=error, **common
            )
            .returning(t.c.id)
        )
        to_retry = (
            update(t)
            .where(expired)
            .values(attempts=t.c.attempts + 1, last_error=error, available_at=now, **common)
            .returning(t.c.id)
        )
        async with self._transaction(uow) as executor:
            dead = len(await executor.fetch(to_dead))
            retried = len(await executor.fetch(to_retry))
        return dead + retried

    # -- the queue's administrative verbs ------------------------------------------------------
    async def dead_letters(
        self, limit: int = 100, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> list[J]:
        """Dead jobs (of the types this repository knows), oldest first."""
        await self.flush(uow)
        rows = await self.queue.dead_letters(limit, uow=uow)
        known = self.job_types()
        return [
            self._load(known[r["job_type"]], r, JobStatus.DEAD)
            for r in rows
            if r["job_type"] in known
        ]

    async def requeue(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> int:
        """Dead jobs (all, or ``job_ids``) back to PENDING, due now, attempts reset."""
        where = None if job_ids is None else self.table.c.job_id.in_([str(i) for i in job_ids])
        await self.flush(uow)
        return await self.queue.requeue(where=where, uow=uow)

    async def purge(
        self,
        older_than: timedelta | float,
        *,
        include_dead: bool = False,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> int:
        """Delete COMPLETED and CANCELLED jobs (and DEAD ones with ``include_dead``) that
        finished more than ``older_than`` (a ``timedelta`` or seconds) ago; frees their dedupe
        keys."""
        if not isinstance(older_than, timedelta):
            older_than = timedelta(seconds=older_than)
        statuses = (DONE, DEAD) if include_dead else (DONE,)
        await self.flush(uow)
        return await self.queue.purge(older_than, statuses=statuses, uow=uow)

    async def stats(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> QueueStats:
        """Queue health: pending / leased / scheduled / done / dead counts and the lag of the
        oldest due job (for metrics and health checks)."""
        await self.flush(uow)
        return await self.queue.stats(uow=uow)

    # -- the earlier names (deprecated) --------------------------------------------------------
    async def dead_jobs(
        self, limit: int = 100, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> list[J]:
        """Deprecated: :meth:`dead_letters`."""
        renamed("SQLAlchemyBackgroundJobRepository.dead_jobs", "dead_letters")
        return await self.dead_letters(limit, uow=uow)
