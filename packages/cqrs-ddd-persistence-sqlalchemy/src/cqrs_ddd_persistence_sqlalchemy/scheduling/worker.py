"""``SchedulerWorker``: fires periodic schedules and dispatches due scheduled commands.

It starts and stops as every worker of the library does (:class:`~..workers.WorkerLifecycle`):
``await worker.run()``, ``await worker.run_once()``, ``worker.stop()`` (await it to wait until
``run()`` has returned).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from cqrs_ddd_advanced_core.scheduling import PeriodicCommand
from cqrs_ddd_core.errors import RetryableError
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import fencing_refused
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import span
from cqrs_ddd_persistence_sqlalchemy.scheduling.scheduler import (
    SQLAlchemyCommandScheduler,
    command_type_name,
)
from cqrs_ddd_persistence_sqlalchemy.workers import WorkerLifecycle

__all__ = ["Dispatcher", "SchedulerWorker"]

logger = logging.getLogger(__name__)

#: ``async def dispatch(command) -> None`` — sends the command to its handler.
Dispatcher = Callable[[Any], Awaitable[Any]]


class SchedulerWorker(WorkerLifecycle):
    """Fires periodic schedules and dispatches due commands.

    Args:
        scheduler: the command scheduler.
        dispatch: ``async def dispatch(command)``; an exception counts a failed attempt.
        command_types: classes (pydantic models) the stored payloads are turned back into,
            as a list (keyed by ``__command_type__`` or class name) or a ``{name: class}`` map.
            A row whose type is not here is dead-lettered on its own.
        periodic: periodic commands fired once per period.

    Example::

        worker = SchedulerWorker(scheduler, mediator.send, [CancelUnpaidOrder],
                                 periodic=[PeriodicCommand("nightly", "0 2 * * *", "Report")])
        await worker.run()
    """

    def __init__(
        self,
        scheduler: SQLAlchemyCommandScheduler,
        dispatch: Dispatcher,
        command_types: Mapping[str, type[Any]] | Iterable[type[Any]] = (),
        *,
        periodic: Sequence[PeriodicCommand] = (),
        batch_size: int = 100,
        poll_interval: float = 1.0,
        catch_up: timedelta | None = timedelta(hours=1),
    ) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.dispatch = dispatch
        if isinstance(command_types, Mapping):
            self.command_types: dict[str, type[Any]] = dict(command_types)
        else:
            self.command_types = {command_type_name(c): c for c in command_types}
        self.periodic = list(periodic)
        for item in self.periodic:
            item.parsed  # noqa: B018 - parse now: a bad expression fails at start-up
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.catch_up = catch_up

    def _build(self, command_type: str, payload: Mapping[str, Any]) -> Any:
        cls = self.command_types[command_type]
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls.model_validate(dict(payload))
        return cls(**payload)

    async def run_once(self) -> int:
        """Fire periodic schedules, then dispatch one batch; return how many were settled."""
        if self.periodic:
            await self.scheduler.fire_periodic(self.periodic, catch_up=self.catch_up)
        claims = await self.scheduler.claim(self.batch_size)
        for claim in claims:
            command_type = str(claim["command_type"])
            if command_type not in self.command_types:
                logger.error("scheduled command %s: unknown type %r", claim.id, command_type)
                await self.scheduler.fail(
                    [claim], error=f"unknown command type {command_type!r}", retry=False
                )
                continue
            try:
                command = self._build(command_type, claim["payload"] or {})
                with span(
                    f"dispatch {command_type}",
                    {
                        "messaging.system": "cqrs_scheduler",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": command_type,
                        "messaging.message.id": str(claim.id),
                    },
                    engine=self.scheduler.queue.binding.engine,
                    kind="consumer",
                ):
                    await self.dispatch(command)
            except Exception as exc:
                logger.warning("scheduled command %s failed", claim.id, exc_info=True)
                await self.scheduler.fail([claim], error=f"{type(exc).__name__}: {exc}")
                continue
            # Acknowledged one by one: a crash re-dispatches at most the command in flight.
            outcome = await self.scheduler.complete([claim])
            if outcome.lost:
                fencing_refused("scheduler", len(outcome.lost))
                logger.warning("scheduled command %s: lease lost before ack", claim.id)
        return len(claims)

    async def run(self) -> None:
        """Loop until :meth:`stop`. A transient database error is logged and retried."""
        async with self.running():
            while not self.stopping:
                try:
                    settled = await self.run_once()
                except RetryableError:
                    logger.warning("scheduler: database unavailable; retrying", exc_info=True)
                    settled = 0
                if settled == 0:
                    await self.sleep(self.poll_interval)
