"""Background jobs: the persisted job model, its statuses and the context a running job sees."""

from __future__ import annotations

import os
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from cqrs_ddd_advanced_core.jobs.retry import Backoff
from cqrs_ddd_core.domain.events import utc_now

__all__ = ["JOB_FIELDS", "BackgroundJob", "JobContext", "JobStatus"]


class JobStatus(StrEnum):
    """Lifecycle of a job. Stored as its string value.

    PENDING covers "waiting for its first run" and "waiting for a retry" (``run_at`` says when);
    RUNNING is a job under a live lease. ``attempts`` counts runs that ended (failed, timed out
    or succeeded): a job that failed twice, then succeeded, has ``attempts == 3``.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.DEAD, JobStatus.CANCELLED)


def _new_id() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` makes it.

    Formatted straight from the random bytes: ``uuid.uuid4()`` builds a ``UUID`` object only
    to print it, which took half the cost of building a job (measured: 2.7 -> 1.0 us)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


#: The RFC 4122 variant bits (``10xx``) set in the first hex digit of the fourth group.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}

#: Job class -> the names its ``arguments()`` serialises (computed once per class).
_ARGUMENTS: dict[type[BaseModel], set[str]] = {}


class BackgroundJob(BaseModel):
    """Base class of background jobs: subclass it with the job's arguments as fields.

    Example::

        class SendInvoice(BackgroundJob):
            invoice_id: str

            async def execute(self, ctx: JobContext) -> dict[str, str]:
                await ctx.progress(0.5, "rendering")
                return {"sent": self.invoice_id}

        await jobs.enqueue(SendInvoice(invoice_id="inv-1", max_attempts=5), uow=uow)

    ``__job_type__`` (the class name by default) is the stored type name; ``__backoff__`` the
    delay between attempts.
    """

    model_config = ConfigDict(validate_assignment=True)

    __job_type__: ClassVar[str | None] = None
    __backoff__: ClassVar[Backoff] = Backoff()

    id: str = Field(default_factory=_new_id)
    status: JobStatus = JobStatus.PENDING
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 3
    run_at: datetime | None = None
    dedupe_key: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    error: str | None = None
    cancel_requested: bool = False
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None

    @classmethod
    def job_type(cls) -> str:
        return cls.__job_type__ or cls.__name__

    @classmethod
    def argument_names(cls) -> set[str]:
        """The names :meth:`arguments` serialises: the job's own fields (computed ones
        included), without the bookkeeping ones (do not modify the set)."""
        names = _ARGUMENTS.get(cls)
        if names is None:
            fields = {*cls.model_fields, *cls.model_computed_fields}
            names = _ARGUMENTS[cls] = fields - JOB_FIELDS
        return names

    def arguments(self) -> dict[str, Any]:
        """The job's own fields (JSON-ready), without the bookkeeping ones."""
        cls = type(self)
        names = cls.argument_names()
        if not names:
            return {}
        # The serializer with the argument names to include: what ``model_dump(mode="json",
        # exclude=JOB_FIELDS)`` returns, without its per-call set and bookkeeping (enqueue's
        # hot path: 1.3 -> 0.8 us).
        result: dict[str, Any] = cls.__pydantic_serializer__.to_python(
            self, mode="json", include=names
        )
        return result

    async def execute(self, ctx: JobContext) -> Any:
        """Do the work; the return value is stored as the job's result."""
        raise NotImplementedError(
            f"{type(self).__name__}.execute is not implemented and no handler was registered"
        )


@runtime_checkable
class JobContext(Protocol):
    """What a running job can tell (and ask) its worker."""

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Record progress (0.0 - 1.0); also extends the lease."""

    async def heartbeat(self) -> bool:
        """Extend the lease; returns False once cancellation was requested."""

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested (as of the last heartbeat or progress)."""


#: Fields of :class:`BackgroundJob` itself (columns); the rest are the job's arguments.
JOB_FIELDS: frozenset[str] = frozenset(BackgroundJob.model_fields)
