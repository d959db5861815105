"""One running job, as ``JobWorker`` sees it: its :class:`JobContext` and its handler call."""

from __future__ import annotations

import asyncio
from typing import Any

from cqrs_ddd_persistence_sqlalchemy.jobs.base import ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.jobs.repository import SQLAlchemyBackgroundJobRepository

__all__ = ["JobRun", "RunningContext"]


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
