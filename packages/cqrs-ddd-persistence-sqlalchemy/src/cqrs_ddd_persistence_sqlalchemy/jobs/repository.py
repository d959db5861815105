"""``SQLAlchemyBackgroundJobRepository``: a job queue on the durable-queue primitive.

Jobs are rows of ``cqrs_background_jobs`` (a ``queue_columns`` table). Claiming, leases,
fencing tokens, retries and dead letters are :class:`~..queue.DurableQueue`'s, with the queue's
verbs (``claim / complete / fail / release / heartbeat / dead_letters / requeue / purge /
stats``, see ``queue/README.md``); this package adds what is particular to jobs: typed job
classes, priorities, a dedupe key, progress, results and cancellation. A job settles one at a
time because each carries its own result (``complete(claimed, result)``); ``complete_many``
settles a batch.

The per-job statements (claim, complete, heartbeat) are kept statements run through
``DurableQueue.run``: one statement per operation outside a unit of work (benchmarked:
``benchmarks/bench_jobs.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobStatus
from cqrs_ddd_core.errors import LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.jobs.admin import JobAdmin
from cqrs_ddd_persistence_sqlalchemy.jobs.base import ClaimedJob, trace_context
from cqrs_ddd_persistence_sqlalchemy.jobs.statements import (
    COMPLETE,
    COMPLETE_MANY,
    build_complete,
    build_complete_many,
    encode_result,
    fenced_builder,
)
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import fencing_refused
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span
from cqrs_ddd_persistence_sqlalchemy.queue import Claim, Outcome
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["ClaimedJob", "SQLAlchemyBackgroundJobRepository"]

J = TypeVar("J", bound=BackgroundJob)


class SQLAlchemyBackgroundJobRepository(JobAdmin[J]):
    """Enqueue, claim, run-state and administration of background jobs.

    Args:
        job_cls: the job class (or a common base class): it and its subclasses can be loaded.
        bind: engine (fastest), session factory, session or unit of work for calls made
            without ``uow=`` and outside any unit of work (``session_factory=`` is its
            deprecated name).
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

    # -- enqueueing ------------------------------------------------------------------------
    async def enqueue(
        self,
        job: J,
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        dedupe_key: str | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> str:
        """Store ``job`` (in ``uow``'s transaction when given or ambient); return its id.

        Outside a unit of work this is one statement on its own (one autocommit round trip on
        PostgreSQL). In a unit of work the job is written with the other jobs enqueued in it,
        in one statement, when it commits (see :meth:`flush`); a rollback drops it.

        With a ``dedupe_key`` (argument or field) that another stored job already has, nothing
        is inserted and that job's id is returned (written at once: the answer needs the
        database).
        """
        if run_at is not None:
            job.run_at = run_at
        if priority is not None:
            job.priority = priority
        if dedupe_key is not None:
            job.dedupe_key = dedupe_key
        with db_span(self.queue.binding.engine, "enqueue", self.table.name):
            return await self._enqueue(job, uow)

    async def _enqueue(self, job: J, uow: SQLAlchemyUnitOfWork | None) -> str:
        row = self._row(job, self.clock(), trace_context())
        joined = self.queue.binding.resolve_uow(uow)
        if job.dedupe_key is None:
            if joined is not None:
                self._defer(joined, [row])
            else:
                await self.queue.enqueue([row], uow=uow)
            return job.id
        t = self.table
        await self.flush(joined)  # the jobs enqueued before this one keep their order
        async with self.queue.binding.transaction(uow) as executor:
            stmt = dialect_for(executor.dialect).insert_ignore(t, ["dedupe_key"])
            await executor.execute(stmt, [row])
            existing = await executor.fetch(
                select(t.c.job_id).where(t.c.dedupe_key == job.dedupe_key)
            )
        return str(existing[0][0])

    async def enqueue_many(
        self, jobs: Iterable[J], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int:
        """Store many jobs in one statement (PostgreSQL: ``INSERT … SELECT … FROM unnest(…)``
        with one array per column; SQLite: one ``executemany``); return how many were given.

        Every job is checked before anything is written (``ConfigurationError``: nothing is
        stored). Jobs whose dedupe key another stored job already has are skipped. Outside a
        unit of work the batch is one autocommit round trip on PostgreSQL; in one it is
        written, with the jobs enqueued one by one before it, when the unit of work commits.
        """
        now = self.clock()
        with db_span(self.queue.binding.engine, "enqueue", self.table.name):
            trace = trace_context()
            joined = self.queue.binding.resolve_uow(uow)
            if joined is not None:
                rows = [self._row(job, now, trace) for job in jobs]
                if rows:
                    self._defer(joined, rows)
                return len(rows)
            # Outside a unit of work: straight into one list per column (no mapping per job).
            columns = self._columns(jobs, now, trace)
            count = len(columns["job_id"])
            if count:
                dedupe = ("dedupe_key",) if columns["dedupe_key"].count(None) < count else None
                await self.queue.enqueue_columns(
                    columns, ignore_conflicts_on=dedupe, json_text=("payload",), uow=uow
                )
        return count

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
        with db_span(self.queue.binding.engine, "claim", self.table.name):
            claims = await self.queue.claim(
                limit, lease_seconds=lease_seconds, only={"job_type": wanted}
            )
        return [self._claimed(c, known) for c in claims]  # "priority desc, id" (the queue's)

    def _claimed(self, claim: Claim, known: Mapping[str, type[J]]) -> ClaimedJob[J]:
        cls = known.get(claim["job_type"])
        job = self._load(cls, claim.values, JobStatus.RUNNING) if cls is not None else None
        return ClaimedJob(job=job, job_type=str(claim["job_type"]), claim=claim)

    async def _fenced(
        self,
        claimed: ClaimedJob[J],
        name: str,
        params: dict[str, Any],
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Mapping[Any, Any]:
        """A write only the lease holder may make (``fenced_builder(name)``); returns the row.

        One ``UPDATE … RETURNING`` is atomic on its own: outside a unit of work it runs in
        autocommit (on asyncpg straight on the driver), with no BEGIN/COMMIT round trips.
        """
        params["j_id"] = claimed.claim.id
        params["j_token"] = claimed.claim.token
        params["j_now"] = self.clock()
        rows = await self.queue.run(("job", name), fenced_builder(name), params, uow=uow)
        if not rows:
            fencing_refused("jobs")
            raise LeaseLostError(f"job {claimed.id}: the lease was lost to another worker")
        return rows[0]

    async def heartbeat(
        self,
        claimed: ClaimedJob[J],
        *,
        lease_seconds: float | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> bool:
        """Extend the lease; return whether cancellation was requested (the queue's
        ``heartbeat`` for one job; raises ``LeaseLostError`` if the job is not ours)."""
        span = timedelta(seconds=lease_seconds) if lease_seconds else self.queue.lease
        row = await self._fenced(claimed, "heartbeat", {"j_until": self.clock() + span}, uow)
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
        self, claimed: ClaimedJob[J], result: Any = None, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> None:
        """Mark the job COMPLETED with ``result`` (in ``uow`` for exactly-once effects).

        Raises ``LeaseLostError`` when another worker took the job over meanwhile.
        """
        # ``_fenced(claimed, "complete", ...)``, inlined: the per-job hot path.
        claim = claimed.claim
        params = {
            "j_result": encode_result(result),
            "j_id": claim.id,
            "j_token": claim.token,
            "j_now": self.clock(),
        }
        if not await self.queue.run(COMPLETE, build_complete, params, uow=uow):
            fencing_refused("jobs")
            raise LeaseLostError(f"job {claimed.id}: the lease was lost to another worker")

    async def complete_many(
        self,
        completed: Sequence[tuple[ClaimedJob[J], Any]],
        *,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[ClaimedJob[J]]:
        """Mark many jobs COMPLETED, each with its result; return those whose lease was lost
        to another worker (not written).

        On PostgreSQL this is one statement (one round trip and one commit for the lot), each
        job fenced by its own lease token (a database with array parameters); elsewhere (and
        for one job) one :meth:`complete` per job. A result the JSON codec refuses raises
        ``SerializationError`` before anything is written.
        """
        return await self._complete_encoded(
            [(claimed, encode_result(result)) for claimed, result in completed], uow=uow
        )

    async def _complete_encoded(
        self,
        completed: Sequence[tuple[ClaimedJob[J], str]],
        *,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[ClaimedJob[J]]:
        """:meth:`complete_many` with results already encoded (``encode_result``)."""
        if not completed:
            return []
        with db_span(self.queue.binding.engine, "settle", self.table.name):
            return await self._complete_rows(completed, uow)

    async def _complete_rows(
        self, completed: Sequence[tuple[ClaimedJob[J], str]], uow: SQLAlchemyUnitOfWork | None
    ) -> list[ClaimedJob[J]]:
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
        rows = await self.queue.run(COMPLETE_MANY, build_complete_many, params, uow=uow)
        done = {row["id"] for row in rows}
        lost = [c for c, _ in completed if c.claim.id not in done]
        if lost:
            fencing_refused("jobs", len(lost))
        return lost

    async def mark_cancelled(
        self, claimed: ClaimedJob[J], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> None:
        """The running job stopped because cancellation was requested: CANCELLED."""
        await self._fenced(claimed, "cancelled", {}, uow)

    async def fail(
        self,
        claimed: ClaimedJob[J],
        error: str,
        *,
        delay: float | None = None,
        retry: bool = True,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> JobStatus:
        """Count a failed attempt: PENDING again after the backoff (or ``delay`` seconds), or
        DEAD after the last attempt (or at once with ``retry=False``). Raises
        ``LeaseLostError`` if not ours."""
        if delay is None:
            cls = self.job_types().get(claimed.job_type, self.job_cls)
            delay = (self.backoff or cls.__backoff__).seconds(claimed.claim.attempts + 1)
        # The job's own ``max_attempts`` column is the queue's per-row attempt limit.
        with db_span(self.queue.binding.engine, "settle", self.table.name):
            outcome = await self.queue.fail(
                [claimed.claim], error=error, delay=delay, retry=retry, uow=uow
            )
        if outcome.lost:
            fencing_refused("jobs", len(outcome.lost))
        outcome.raise_if_lost()
        return JobStatus.DEAD if outcome.dead else JobStatus.PENDING

    async def release(
        self, claimed: Sequence[ClaimedJob[J]], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> Outcome:
        """Give jobs back without counting an attempt, due at once (graceful shutdown)."""
        return await self.queue.release([c.claim for c in claimed], uow=uow)
