"""What the job repository's verbs share: construction, job types, rows -> jobs, the status.

Jobs enqueued one by one in a unit of work are kept in memory and written together, in one
statement, right before it commits (or before this repository's next statement in it, or on
``await jobs.flush(uow)``); a rollback drops them.

A job's :class:`~cqrs_ddd_advanced_core.jobs.JobStatus` is never stored twice: it is derived from
the queue columns (``pending`` + live lease = RUNNING, ``done`` + ``cancelled_at`` = CANCELLED,
...), so the database cannot disagree with the domain enum.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, case, or_

from cqrs_ddd_advanced_core.jobs import BackgroundJob, Backoff, JobStatus
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind
from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed_argument
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import trace_metadata
from cqrs_ddd_persistence_sqlalchemy.queue import DEAD, DONE, Claim, DurableQueue, Pin
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor
    from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["ClaimedJob", "JobStore"]

J = TypeVar("J", bound=BackgroundJob)

_NO_METADATA: dict[str, Any] = {}
#: Job classes already checked by ``_row`` -> their stored type name.
_JOB_TYPES: dict[type, str] = {}


def _checked(job: Any) -> str:
    """The stored type name of ``job``, checked (``ConfigurationError`` before anything is
    written): a ``BackgroundJob``, at least one attempt, an aware ``run_at``."""
    cls = type(job)
    job_type = _JOB_TYPES.get(cls)
    if job_type is None:
        if not isinstance(job, BackgroundJob):
            raise ConfigurationError(f"not a BackgroundJob: {cls.__name__}")
        # Checked once per class (``isinstance`` of a pydantic model goes through ABCMeta).
        job_type = _JOB_TYPES[cls] = cls.job_type()
    if job.max_attempts < 1:
        raise ConfigurationError(f"job {job.id}: max_attempts must be >= 1")
    run_at = job.run_at
    if run_at is not None and run_at.tzinfo is None:
        raise ConfigurationError(f"job {job.id}: run_at must be an aware datetime")
    return job_type


#: Bytes after which pydantic's JSON of a payload is redone by the library's codec: ``null`` may
#: be a NaN or an infinity pydantic wrote as null (the codec refuses them), the others are
#: pydantic's non-standard constants (``ser_json_inf_nan="constants"``).
_RECHECK = (b"null", b"NaN", b"Infinity")


def payload_json(job: BackgroundJob) -> str:
    """``json_dumps(job.arguments())``, made by pydantic's serializer in one pass (one call
    instead of a dict and an encoding: the batch enqueue's hot path, 1.6 -> 0.9 us a job).

    Through ``arguments()`` and the library's codec when a class overrides ``arguments`` or
    the text may hide a value the codec refuses: the same text and the same errors either way
    (the column is ``jsonb``, so the two encoders' spellings store the same value)."""
    cls = type(job)
    if cls.arguments is not BackgroundJob.arguments:
        return json_dumps(job.arguments())
    names = cls.argument_names()
    if not names:
        return "{}"
    raw: bytes = cls.__pydantic_serializer__.to_json(job, include=names)
    if any(token in raw for token in _RECHECK):
        return json_dumps(job.arguments())
    return raw.decode()


def trace_context() -> dict[str, Any] | None:
    """The W3C trace context to store with jobs enqueued now (``None`` when spans are off).

    Read once per call, not per job: every job of a batch is enqueued under the same span."""
    return trace_metadata(_NO_METADATA)


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


class JobStore(Generic[J]):
    """Construction and the pieces every verb of
    :class:`~.repository.SQLAlchemyBackgroundJobRepository` uses (its base class)."""

    def __init__(
        self,
        job_cls: type[J],
        bind: Bind = None,
        *,
        session_factory: Bind = None,
        lease_seconds: float = 60.0,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        bind = renamed_argument(
            "SQLAlchemyBackgroundJobRepository", "session_factory", "bind", session_factory, bind
        )
        self.job_cls = job_cls
        self.table = jobs_table
        self.backoff = backoff
        self.clock = clock
        t = jobs_table
        self.queue = DurableQueue(
            t,
            bind,
            lease_seconds=lease_seconds,
            order_by=(t.c.priority.desc(), t.c.id),
            clock=clock,
        )
        # Rows of jobs enqueued in a unit of work, not written yet (see the module docstring).
        self._pending: weakref.WeakKeyDictionary[SQLAlchemyUnitOfWork, list[dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
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

    # -- jobs enqueued in a unit of work -----------------------------------------------------
    def _defer(self, uow: SQLAlchemyUnitOfWork, rows: Sequence[dict[str, Any]]) -> None:
        """Keep ``rows`` until ``uow`` commits (written first), rolls back (dropped), or this
        repository runs its next statement in it."""
        pending = self._pending.get(uow)
        if pending is None:
            pending = self._pending[uow] = []

            async def write(joined: SQLAlchemyUnitOfWork) -> None:
                await self.flush(joined)

            def drop() -> None:
                self._pending.pop(uow, None)

            uow.before_commit(write)
            uow.after_rollback(drop)
        pending.extend(rows)

    async def flush(self, uow: SQLAlchemyUnitOfWork | None = None) -> None:
        """Write the jobs enqueued one by one in ``uow`` (or the ambient unit of work) that
        are still waiting for its commit, in one statement. The commit does it by itself;
        call it to make them visible to statements of your own before that."""
        joined = self.queue.binding.resolve_uow(uow)
        if joined is None:
            return
        rows = self._pending.pop(joined, None)
        if rows:
            await self._insert(rows, joined)

    async def _insert(self, rows: Sequence[dict[str, Any]], uow: Any) -> None:
        # Rows with a dedupe key skip the ones already stored (``ON CONFLICT DO NOTHING``).
        if any(row["dedupe_key"] is not None for row in rows):
            await self.queue.enqueue(rows, ignore_conflicts_on=("dedupe_key",), uow=uow)
        else:
            await self.queue.enqueue(rows, uow=uow)

    @asynccontextmanager
    async def _transaction(self, uow: SQLAlchemyUnitOfWork | None) -> AsyncIterator[Executor]:
        """The queue's transaction for this repository's statements, after the jobs still
        waiting in the joined unit of work are written (they must see them)."""
        await self.flush(uow)
        async with self.queue.transaction(uow) as executor:
            yield executor

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

    # -- rows <-> jobs -----------------------------------------------------------------------
    def _row(
        self, job: BackgroundJob, now: datetime, trace: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The row of ``job`` (checked: ``ConfigurationError`` before anything is written).

        The job was validated when it was built (a pydantic model, ``validate_assignment``);
        its arguments are serialised once here and encoded once as JSON by the queue.
        ``trace`` is :func:`trace_context` of the call, read once for a whole batch."""
        job_type = _checked(job)
        run_at = job.run_at
        return {
            "job_id": job.id,
            "job_type": job_type,
            "payload": job.arguments(),
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "dedupe_key": job.dedupe_key,
            "available_at": run_at or now,
            "created_at": job.created_at,
            "updated_at": now,
            "trace_context": trace,
        }

    def _columns(
        self, jobs: Iterable[BackgroundJob], now: datetime, trace: dict[str, Any] | None
    ) -> dict[str, list[Any]]:
        """The rows of ``jobs`` column by column (the columns of :meth:`_row`, same checks;
        ``payload`` already JSON text: :func:`payload_json`)."""
        ids: list[str] = []
        types: list[str] = []
        payloads: list[str] = []
        priorities: list[int] = []
        limits: list[int] = []
        dedupe: list[str | None] = []
        available: list[datetime] = []
        created: list[datetime] = []
        for job in jobs:
            types.append(_checked(job))
            run_at = job.run_at
            ids.append(job.id)
            payloads.append(payload_json(job))
            priorities.append(job.priority)
            limits.append(job.max_attempts)
            dedupe.append(job.dedupe_key)
            available.append(run_at or now)
            created.append(job.created_at)
        count = len(ids)
        return {
            "job_id": ids,
            "job_type": types,
            "payload": payloads,
            "priority": priorities,
            "max_attempts": limits,
            "dedupe_key": dedupe,
            "available_at": available,
            "created_at": created,
            "updated_at": [now] * count,
            "trace_context": [trace] * count,
        }

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
