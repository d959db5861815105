"""``SQLAlchemyBackgroundJobRepository``: a job queue on the durable-queue primitive.

Jobs are rows of ``cqrs_background_jobs`` (a ``queue_columns`` table). Claiming, leases,
fencing tokens, retries and dead letters are :class:`~..queue.DurableQueue`'s; this module adds
what is particular to jobs: typed job classes, priorities, a dedupe key, progress, results and
cancellation. The job's :class:`~cqrs_ddd_advanced_core.jobs.JobStatus` is never stored twice:
it is derived from the queue columns (``pending`` + live lease = RUNNING, ``done`` +
``cancelled_at`` = CANCELLED, ...), so the database cannot disagree with the domain enum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    String,
    Text,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    update,
)

from cqrs_ddd_advanced_core.jobs import BackgroundJob, Backoff, JobStatus
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConfigurationError, LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.queue import (
    DEAD,
    DONE,
    PENDING,
    Claim,
    DurableQueue,
    Pin,
    QueueStats,
)
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = ["ClaimedJob", "SQLAlchemyBackgroundJobRepository", "jobs_table"]

J = TypeVar("J", bound=BackgroundJob)


_t = jobs_table.c
_NOW = bindparam("j_now", type_=UTCDateTime())
_UNTIL = bindparam("j_until", type_=UTCDateTime())


def _fenced_update(**values: Any) -> Update:
    """A write only the lease holder may make, built once with bound parameters (SQLAlchemy's
    compiled cache hits, and outside a unit of work it can run on the driver)."""
    return (
        update(jobs_table)
        .where(
            _t.id == bindparam("j_id", type_=_t.id.type),
            _t.lease_token == bindparam("j_token", type_=String()),
        )
        .values(updated_at=_NOW, **values)
        .returning(_t.cancel_requested, _t.attempts)
    )


# Constants are written into the SQL, not sent as parameters with every settle.
_SETTLED = {"lease_token": null(), "locked_until": null()}
_DONE_SQL = literal_column(f"'{DONE}'", String())
_FENCED: dict[str, Update] = {
    "heartbeat": _fenced_update(locked_until=_UNTIL),
    "progress": _fenced_update(
        progress=bindparam("j_progress", type_=Float()), locked_until=_UNTIL
    ),
    "progress_message": _fenced_update(
        progress=bindparam("j_progress", type_=Float()),
        progress_message=bindparam("j_message", type_=Text()),
        locked_until=_UNTIL,
    ),
    "cancelled": _fenced_update(status=_DONE_SQL, cancelled_at=_NOW, finished_at=_NOW, **_SETTLED),
}


def _build_complete(dialect: DialectSupport) -> Update:
    # The result arrives as JSON text made by the library's codec (one encoding, whatever the
    # engine's JSON codec): PostgreSQL parses it into the jsonb column, SQLite stores it.
    text_ = bindparam("j_result", type_=Text())
    return _fenced_update(
        status=_DONE_SQL,
        result=dialect.json_from_text(text_),
        progress=literal_column("1.0", Float()),
        attempts=_t.attempts + literal_column("1", Integer()),
        finished_at=_NOW,
        **_SETTLED,
    )


def _build_complete_many(dialect: DialectSupport) -> Update:
    """Complete many jobs in one statement, each fenced by its own token (a database with
    array parameters: ``dialect.supports_arrays``)."""
    batch = (
        func.unnest(
            bindparam("j_ids", type_=ARRAY(BigInteger())),
            bindparam("j_tokens", type_=ARRAY(String())),
            bindparam("j_results", type_=ARRAY(Text())),
        )
        .table_valued("id", "token", "result", name="batch")
        .render_derived()
    )
    return (
        update(jobs_table)
        .where(_t.id == batch.c.id, _t.lease_token == batch.c.token)
        .values(
            status=_DONE_SQL,
            result=dialect.json_from_text(batch.c.result),
            progress=literal_column("1.0", Float()),
            attempts=_t.attempts + literal_column("1", Integer()),
            finished_at=_NOW,
            updated_at=_NOW,
            **_SETTLED,
        )
        .returning(_t.id)
    )


def _fenced_builder(name: str) -> Callable[[DialectSupport], Update]:
    if name == "complete":
        return _build_complete
    stmt = _FENCED[name]
    return lambda _dialect: stmt


def _encode_result(result: Any) -> str:
    # Wrapped, so that a result that is itself a JSON string stays one.
    return json_dumps({"value": result})


_COMPLETE_NAME = ("job", "complete")


@dataclass(frozen=True)
class ClaimedJob(Generic[J]):
    """A job under lease. ``job`` is ``None`` when its type is not known to this process."""

    job: J | None
    job_type: str
    claim: Claim

    @property
    def id(self) -> str:
        return str(self.claim["job_id"])

    @property
    def cancel_requested(self) -> bool:
        return bool(self.claim["cancel_requested"])


class SQLAlchemyBackgroundJobRepository(Generic[J]):
    """Enqueue, claim, run-state and administration of background jobs.

    Args:
        job_cls: the job class (or a common base class): it and its subclasses can be loaded.
        bind: engine (fastest), session factory, session or unit of work for calls made
            without ``uow=`` and outside any unit of work.
        lease_seconds: how long a claim is exclusive; running jobs heartbeat to extend it.
        backoff: delay between attempts (default: each job class's ``__backoff__``).

    Example::

        jobs = SQLAlchemyBackgroundJobRepository(SendInvoice, engine)
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await jobs.enqueue(SendInvoice(invoice_id="inv-1"), uow=uow, dedupe_key="inv-1")
            await uow.commit()
        for claimed in await jobs.claim(10):
            ...
            await jobs.complete(claimed, result={"ok": True})
    """

    def __init__(
        self,
        job_cls: type[J],
        bind: Any = None,
        *,
        session_factory: Any = None,
        lease_seconds: float = 60.0,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.job_cls = job_cls
        self.table = jobs_table
        self.backoff = backoff
        self.clock = clock
        t = jobs_table
        self.queue = DurableQueue(
            t,
            bind if bind is not None else session_factory,
            lease_seconds=lease_seconds,
            order_by=(t.c.priority.desc(), t.c.id),
            clock=clock,
        )

    def pinned(self) -> AbstractAsyncContextManager[Pin | None]:
        """Run this task's claims and settles (outside a unit of work) on one connection held
        for the block: a worker loop saves a pool checkout per statement, like a hand-written
        worker holding its connection. Tasks created inside the block inherit the pin, so
        wrap concurrent helpers in ``DurableQueue.unpinned()``; after a connection failure
        (``ConnectionLostError``) leave the block and pin again. The block yields the
        :class:`~..queue.Pin` (``None`` without an engine): other tasks share the connection
        one at a time with ``async with pin.borrow():``. ``JobWorker`` does this.

        Example::

            async with jobs.pinned():
                while claimed := await jobs.claim(50):
                    for c in claimed:
                        await jobs.complete(c, await run(c.job))
        """
        return self.queue.pinned()

    # -- types -----------------------------------------------------------------------------
    def job_types(self) -> dict[str, type[J]]:
        """Job type name -> class, for ``job_cls`` and every subclass defined so far."""
        found: dict[str, type[J]] = {}
        stack: list[type[J]] = [self.job_cls]
        while stack:
            cls = stack.pop()
            found.setdefault(cls.job_type(), cls)
            stack.extend(cls.__subclasses__())
        return found

    def status_expression(self, now: datetime | None = None) -> ColumnElement[str]:
        """SQL deriving :class:`JobStatus` from the queue columns."""
        t = self.table
        now = now or self.clock()
        return case(
            (t.c.status == DEAD, JobStatus.DEAD.value),
            (and_(t.c.status == DONE, t.c.cancelled_at.is_not(None)), JobStatus.CANCELLED.value),
            (t.c.status == DONE, JobStatus.COMPLETED.value),
            (
                and_(t.c.lease_token.is_not(None), t.c.locked_until > now),
                JobStatus.RUNNING.value,
            ),
            else_=JobStatus.PENDING.value,
        )

    def _not_leased(self, now: datetime) -> ColumnElement[bool]:
        t = self.table
        return or_(t.c.lease_token.is_(None), t.c.locked_until <= now)

    # -- enqueueing ------------------------------------------------------------------------
    def _row(self, job: BackgroundJob, now: datetime) -> dict[str, Any]:
        return {
            "job_id": job.id,
            "job_type": type(job).job_type(),
            "payload": job.arguments(),
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "dedupe_key": job.dedupe_key,
            "available_at": job.run_at or now,
            "created_at": job.created_at,
            "updated_at": now,
        }

    async def enqueue(
        self,
        job: J,
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        dedupe_key: str | None = None,
        uow: Any = None,
    ) -> str:
        """Store ``job`` (in ``uow``'s transaction when given or ambient); return its id.

        With a ``dedupe_key`` (argument or field) that another stored job already has, nothing
        is inserted and that job's id is returned.
        """
        updates: dict[str, Any] = {}
        if run_at is not None:
            updates["run_at"] = run_at
        if priority is not None:
            updates["priority"] = priority
        if dedupe_key is not None:
            updates["dedupe_key"] = dedupe_key
        for name, value in updates.items():
            setattr(job, name, value)
        if job.max_attempts < 1:
            raise ConfigurationError("max_attempts must be >= 1")
        row = self._row(job, self.clock())
        if job.dedupe_key is None:
            await self.queue.enqueue([row], uow=uow)
            return job.id
        t = self.table
        async with self.queue.binding.transaction(uow) as executor:
            stmt = dialect_for(executor.dialect).insert_ignore(t, ["dedupe_key"])
            await executor.execute(stmt, [row])
            existing = await executor.fetch(
                select(t.c.job_id).where(t.c.dedupe_key == job.dedupe_key)
            )
        return str(existing[0][0])

    async def enqueue_many(self, jobs: Iterable[J], *, uow: Any = None) -> int:
        """Store many jobs in one ``executemany`` (dedupe keys skip existing ones)."""
        now = self.clock()
        rows = [self._row(job, now) for job in jobs]
        if any(r["dedupe_key"] is not None for r in rows):
            await self.queue.enqueue(rows, ignore_conflicts_on=("dedupe_key",), uow=uow)
        else:
            await self.queue.enqueue(rows, uow=uow)
        return len(rows)

    # -- claiming and running --------------------------------------------------------------
    async def claim(
        self,
        limit: int = 1,
        *,
        lease_seconds: float | None = None,
        job_types: Sequence[str] | None = None,
    ) -> list[ClaimedJob[J]]:
        """Lease up to ``limit`` due jobs, highest priority first, then oldest.

        Only jobs whose type this repository knows (or ``job_types``) are taken.
        """
        known = self.job_types()
        wanted = list(job_types) if job_types is not None else list(known)
        claims = await self.queue.claim(
            limit, lease_seconds=lease_seconds, only={"job_type": wanted}
        )
        return [self._claimed(c, known) for c in claims]  # "priority desc, id" (the queue's)

    def _claimed(self, claim: Claim, known: Mapping[str, type[J]]) -> ClaimedJob[J]:
        cls = known.get(claim["job_type"])
        job = self._load(cls, claim.values, JobStatus.RUNNING) if cls is not None else None
        return ClaimedJob(job=job, job_type=str(claim["job_type"]), claim=claim)

    def _load(self, cls: type[J], row: Mapping[Any, Any], status: JobStatus) -> J:
        return cls.model_validate(
            {
                **(row["payload"] or {}),
                "id": row["job_id"],
                "status": status,
                "priority": row["priority"],
                "attempts": row["attempts"],
                "max_attempts": row["max_attempts"],
                "run_at": row["available_at"],
                "dedupe_key": row["dedupe_key"],
                "progress": row["progress"],
                "progress_message": row["progress_message"],
                "result": (row["result"] or {}).get("value"),
                "error": row["last_error"],
                "cancel_requested": row["cancel_requested"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
                "finished_at": row["finished_at"],
            }
        )

    async def _fenced(
        self, claimed: ClaimedJob[J], name: str, params: dict[str, Any], uow: Any = None
    ) -> Mapping[Any, Any]:
        """A write only the lease holder may make (``_FENCED[name]``); returns the row.

        One ``UPDATE … RETURNING`` is atomic on its own: outside a unit of work it runs in
        autocommit (on asyncpg straight on the driver), with no BEGIN/COMMIT round trips.
        """
        params["j_id"] = claimed.claim.id
        params["j_token"] = claimed.claim.token
        params["j_now"] = self.clock()
        rows = await self.queue.run(("job", name), _fenced_builder(name), params, uow=uow)
        if not rows:
            raise LeaseLostError(f"job {claimed.id}: the lease was lost to another worker")
        return rows[0]

    async def heartbeat(
        self, claimed: ClaimedJob[J], *, lease_seconds: float | None = None
    ) -> bool:
        """Extend the lease; return whether cancellation was requested."""
        span = timedelta(seconds=lease_seconds) if lease_seconds else self.queue.lease
        row = await self._fenced(claimed, "heartbeat", {"j_until": self.clock() + span})
        return bool(row["cancel_requested"])

    async def progress(
        self, claimed: ClaimedJob[J], fraction: float, message: str | None = None
    ) -> bool:
        """Record progress (and extend the lease); return whether cancellation was requested."""
        params: dict[str, Any] = {
            "j_progress": max(0.0, min(1.0, float(fraction))),
            "j_until": self.clock() + self.queue.lease,
        }
        name = "progress"
        if message is not None:
            params["j_message"] = message
            name = "progress_message"
        row = await self._fenced(claimed, name, params)
        return bool(row["cancel_requested"])

    async def complete(
        self, claimed: ClaimedJob[J], result: Any = None, *, uow: Any = None
    ) -> None:
        """Mark the job COMPLETED with ``result`` (in ``uow`` for exactly-once effects).

        Raises ``LeaseLostError`` when another worker took the job over meanwhile.
        """
        # ``_fenced(claimed, "complete", ...)``, inlined: the per-job hot path.
        claim = claimed.claim
        params = {
            "j_result": _encode_result(result),
            "j_id": claim.id,
            "j_token": claim.token,
            "j_now": self.clock(),
        }
        if not await self.queue.run(_COMPLETE_NAME, _build_complete, params, uow=uow):
            raise LeaseLostError(f"job {claimed.id}: the lease was lost to another worker")

    async def complete_many(
        self, completed: Sequence[tuple[ClaimedJob[J], Any]], *, uow: Any = None
    ) -> list[ClaimedJob[J]]:
        """Mark many jobs COMPLETED, each with its result; return those whose lease was lost
        to another worker (not written).

        On PostgreSQL this is one statement (one round trip and one commit for the lot), each
        job fenced by its own lease token; elsewhere (and for one job) one :meth:`complete`
        per job. A result
        the JSON codec refuses raises ``SerializationError`` before anything is written.
        """
        return await self._complete_encoded(
            [(claimed, _encode_result(result)) for claimed, result in completed], uow=uow
        )

    async def _complete_encoded(
        self, completed: Sequence[tuple[ClaimedJob[J], str]], *, uow: Any = None
    ) -> list[ClaimedJob[J]]:
        """:meth:`complete_many` with results already encoded (``_encode_result``)."""
        if not completed:
            return []
        if len(completed) == 1 or not self.queue.dialect(uow).supports_arrays:
            lost: list[ClaimedJob[J]] = []
            for claimed, text_ in completed:
                try:
                    await self._fenced(claimed, "complete", {"j_result": text_}, uow)
                except LeaseLostError:
                    lost.append(claimed)
            return lost
        # In id order: concurrent multi-row writers then lock the rows in one order.
        ordered = sorted(completed, key=lambda item: item[0].claim.id)
        params = {
            "j_ids": [c.claim.id for c, _ in ordered],
            "j_tokens": [c.claim.token for c, _ in ordered],
            "j_results": [text_ for _, text_ in ordered],
            "j_now": self.clock(),
        }
        rows = await self.queue.run(("job", "complete_many"), _build_complete_many, params, uow=uow)
        done = {row["id"] for row in rows}
        return [c for c, _ in completed if c.claim.id not in done]

    async def mark_cancelled(self, claimed: ClaimedJob[J], *, uow: Any = None) -> None:
        """The running job stopped because cancellation was requested: CANCELLED."""
        await self._fenced(claimed, "cancelled", {}, uow)

    async def fail(
        self, claimed: ClaimedJob[J], error: str, *, retry: bool = True, uow: Any = None
    ) -> JobStatus:
        """Count a failed attempt: PENDING again after the backoff, or DEAD after the last
        attempt (or at once with ``retry=False``). Raises ``LeaseLostError`` if not ours."""
        attempts = claimed.claim.attempts + 1
        cls = self.job_types().get(claimed.job_type, self.job_cls)
        backoff = self.backoff or cls.__backoff__
        # The job's own ``max_attempts`` column is the queue's per-row attempt limit.
        outcome = await self.queue.fail(
            [claimed.claim], error=error, delay=backoff.seconds(attempts), retry=retry, uow=uow
        )
        outcome.raise_if_lost()
        return JobStatus.DEAD if outcome.dead else JobStatus.PENDING

    async def release(self, claimed: Sequence[ClaimedJob[J]]) -> None:
        """Give jobs back without counting an attempt (graceful shutdown)."""
        await self.queue.release([c.claim for c in claimed])

    # -- administration --------------------------------------------------------------------
    async def get(self, job_id: str, *, uow: Any = None) -> J | None:
        """The job with ``job_id`` and its current status, or ``None``."""
        t = self.table
        now = self.clock()
        stmt = select(t, self.status_expression(now).label("job_status")).where(
            t.c.job_id == str(job_id)
        )
        async with self.queue.transaction(uow) as executor:
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

    async def cancel(self, job_id: str, *, uow: Any = None) -> JobStatus | None:
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
        async with self.queue.transaction(uow) as executor:
            if await executor.fetch(at_once):
                return JobStatus.CANCELLED
            if await executor.fetch(request):
                return JobStatus.RUNNING
            current = await executor.fetch(
                select(self.status_expression(now)).where(t.c.job_id == str(job_id))
            )
        return JobStatus(current[0][0]) if current else None

    async def count_by_status(self, *, uow: Any = None) -> dict[JobStatus, int]:
        """Number of jobs per status (every status present, zeros included)."""
        expr = self.status_expression().label("s")
        stmt = select(expr, func.count()).group_by(expr)
        async with self.queue.transaction(uow) as executor:
            rows = await executor.fetch(stmt)
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def stats(self, *, uow: Any = None) -> QueueStats:
        """Queue health: pending / leased / scheduled / done / dead counts and the lag of the
        oldest due job (for metrics and health checks)."""
        return await self.queue.stats(uow=uow)

    async def recover_stalled(self, *, uow: Any = None) -> int:
        """Count an attempt for jobs whose worker died (lease expired) and free them — or
        dead-letter them when that was their last attempt. Returns how many were recovered.

        Expired leases are re-claimable anyway; recovering them first makes a job that keeps
        killing its worker end up DEAD instead of looping forever.
        """
        t = self.table
        now = self.clock()
        expired = and_(t.c.status == PENDING, t.c.lease_token.is_not(None), t.c.locked_until <= now)
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
        async with self.queue.transaction(uow) as executor:
            dead = len(await executor.fetch(to_dead))
            retried = len(await executor.fetch(to_retry))
        return dead + retried

    async def dead_jobs(self, limit: int = 100, *, uow: Any = None) -> list[J]:
        """Dead jobs, oldest first."""
        rows = await self.queue.dead_letters(limit, uow=uow)
        known = self.job_types()
        return [
            self._load(known[r["job_type"]], r, JobStatus.DEAD)
            for r in rows
            if r["job_type"] in known
        ]

    async def requeue(self, job_ids: Iterable[str], *, uow: Any = None) -> int:
        """Dead jobs back to PENDING (attempts reset)."""
        return await self.queue.requeue(
            where=self.table.c.job_id.in_([str(i) for i in job_ids]), uow=uow
        )

    async def purge(
        self, older_than: timedelta, *, include_dead: bool = False, uow: Any = None
    ) -> int:
        """Delete COMPLETED and CANCELLED jobs (and DEAD ones with ``include_dead``) that
        finished more than ``older_than`` ago; frees their dedupe keys."""
        statuses = (DONE, DEAD) if include_dead else (DONE,)
        return await self.queue.purge(older_than, statuses=statuses, uow=uow)
