"""One running job, as ``JobWorker`` sees it: its :class:`JobContext` and its handler call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import LeaseLostError, RetryableError
from cqrs_ddd_persistence_sqlalchemy.jobs.base import ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.jobs.repository import SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import lease_lost
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import span, stored_context, tracer_for

__all__ = ["JobRun", "RunningContext", "fresh_lease", "job_span"]

logger = logging.getLogger("cqrs_ddd_persistence_sqlalchemy.jobs.worker")


class RunningContext:
    """The :class:`~cqrs_ddd_advanced_core.jobs.JobContext` of one running job: progress
    reports and heartbeats extend its lease and bring cancellation requests back."""

    def __init__(
        self, repo: SQLAlchemyBackgroundJobRepository[Any], claimed: ClaimedJob[Any]
    ) -> None:
        self._repo = repo
        self._claimed = claimed
        self._cancelled = claimed.cancel_requested

    async def progress(self, fraction: float, message: str | None = None) -> None:
        self._cancelled = await self._repo.progress(self._claimed, fraction, message)

    async def heartbeat(self) -> bool:
        self._cancelled = await self._repo.heartbeat(self._claimed)
        return not self._cancelled

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class JobRun:
    """One running job's handler call: its task, whether the handler is still running, and
    why the heartbeat stopped it (``"cancelled"``, ``"lost"``), if it did."""

    __slots__ = ("beat", "running", "stopped", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.running = True
        self.stopped: str | None = None
        self.beat: asyncio.Task[None] | None = None

    def stop(self, reason: str) -> None:
        """Interrupt the handler (at its current ``await``) for ``reason``."""
        if self.running and self.stopped is None:
            self.stopped = reason
            self.task.cancel()

    def start_beat(self, ctx: RunningContext, interval: float) -> None:
        """Start the heartbeat (its first beat is due) unless the handler is done."""
        if self.running:
            self.beat = asyncio.create_task(self.heartbeat(ctx, interval))

    async def heartbeat(self, ctx: RunningContext, interval: float) -> None:
        """Beat now, then every interval seconds while the handler runs; a lost lease or
        a cancellation request stops the handler (:meth:`stop`)."""
        while self.running:
            try:
                alive = await ctx.heartbeat()
            except LeaseLostError:
                lease_lost("jobs")
                logger.warning("job lease lost while running; stopping it")
                self.stop("lost")
                raise
            except RetryableError:
                # One missed beat is harmless while the lease lasts; the next one retries.
                logger.warning("job heartbeat failed; retrying", exc_info=True)
            else:
                if not alive:
                    self.stop("cancelled")  # requested: the job stops at its next await
                    return
            await asyncio.sleep(interval)


def job_span(engine: AsyncEngine | None, claimed: ClaimedJob[Any]) -> AbstractContextManager[Any]:
    """The span of one job's run (nothing when tracing is off): a child of the span that
    enqueued the job, so that the run continues the request's trace."""
    if tracer_for(engine) is None:
        return nullcontext()
    attributes = {
        "messaging.system": "cqrs_jobs",
        "messaging.operation.type": "process",
        "messaging.destination.name": claimed.job_type,
        "messaging.message.id": claimed.id,
    }
    parent = stored_context(claimed.claim.values.get("trace_context"))
    return span(
        f"process {claimed.job_type}", attributes, engine=engine, kind="consumer", context=parent
    )


async def fresh_lease(
    repo: SQLAlchemyBackgroundJobRepository[Any],
    claimed: ClaimedJob[Any],
    heartbeat_interval: float,
    held: Callable[[], AbstractAsyncContextManager[None]],
) -> bool:
    """Whether claimed's lease lasts until its first heartbeat; extended first (on the
    connection held() gives) when the job waited too long for a handler slot (False:
    the lease is lost, do not run it)."""
    left = (claimed.claim.locked_until - repo.clock()).total_seconds()
    # The first beat comes heartbeat_interval after the start; half as much again is the
    # margin for a slow beat (at most half the lease: a job that waited less than that starts
    # on its claim's lease, as it would without waiting).
    if left >= min(1.5 * heartbeat_interval, repo.queue.lease.total_seconds() / 2):
        return True
    try:
        async with held():
            await repo.heartbeat(claimed)
    except LeaseLostError:
        logger.warning("job %s: lease lost while waiting to run", claimed.id)
        return False
    return True
