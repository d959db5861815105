"""``SagaOrchestrator``: runs a saga's steps, persisting after each, compensating on failure.

Guarantees (with a repository that checks versions, as both shipped repositories do):

- steps run in order; the saga is saved after every step and every compensation, so a crashed
  process resumes at the first step that did not complete (a step interrupted *while* running
  runs again: make steps idempotent or give them an idempotency key);
- a failing step (or an expired event wait) turns the saga COMPENSATING; the compensations of
  the completed steps then run latest-first and the saga ends COMPENSATED (FAILED when a
  compensation itself fails);
- an event step suspends the saga until :meth:`SagaOrchestrator.handle_event` brings the event
  with the saga's ``correlation_id``; an event it already handled is ignored;
- two processes can never both advance one saga: the second save fails the version check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from cqrs_ddd_advanced_core.sagas.ports import ISagaRepository
from cqrs_ddd_advanced_core.sagas.state import SagaState, SagaStatus
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import OptimisticConcurrencyError

__all__ = ["SagaOrchestrator"]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=SagaState)


class SagaOrchestrator(Generic[S]):
    """Drives sagas of one class through a repository.

    Args:
        repository: where the saga is saved after every step.
        args / kwargs: passed to every step and compensation (services, clients...).
            Event steps receive the event first.
        keep_alive_interval: while a step or compensation runs, call the repository's
            ``keep_alive(saga)`` (when it has one) this often, so a long step is not taken
            for a crashed one by a recovery worker. Default: a third of the repository's
            ``stall_after``.

    Example::

        orchestrator = SagaOrchestrator(saga_repo, args=(payment_service,))
        saga = await orchestrator.run(OrderFulfillmentSaga(order_id="123"))
        assert saga.status is SagaStatus.COMPLETED
    """

    def __init__(
        self,
        repository: ISagaRepository[S],
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        keep_alive_interval: float | None = None,
    ) -> None:
        self.repository = repository
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        stall_after = getattr(repository, "stall_after", None)
        if keep_alive_interval is None and isinstance(stall_after, timedelta):
            keep_alive_interval = stall_after.total_seconds() / 3
        self._keep_alive = getattr(repository, "keep_alive", None)
        self.keep_alive_interval = keep_alive_interval

    @asynccontextmanager
    async def _alive(self, saga: S) -> AsyncIterator[None]:
        """Keep ``saga`` from looking stalled while the block runs."""
        keep_alive = self._keep_alive
        interval = self.keep_alive_interval
        if keep_alive is None or not interval or interval <= 0:
            yield
            return

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await keep_alive(saga)
                except Exception:  # a missed beat only risks a duplicate recovery: log it
                    logger.warning("saga %s: keep-alive failed", saga.id, exc_info=True)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self, saga: S) -> S:
        """Start (or continue) ``saga`` and drive it as far as it can go."""
        saga.start()
        await self.repository.add(saga)
        return await self.resume(saga)

    async def resume(self, saga: S) -> S:
        """Continue a loaded saga from its last saved step (the recovery path)."""
        while True:
            if saga.status is SagaStatus.COMPENSATING:
                await self._compensate(saga)
                return saga
            if saga.status is not SagaStatus.RUNNING:
                return saga
            spec = saga.next_step()
            if spec is None:
                saga.complete_if_done()
                await self.repository.add(saga)
                return saga
            if spec.on_event is not None:
                if saga.waiting_for != spec.on_event:
                    saga.suspend_for(spec)
                    try:
                        await self.repository.add(saga)
                    except OptimisticConcurrencyError:
                        # The awaited event arrived first and handle_event advanced the saga
                        # (it accepts an event for the next step before the wait is saved).
                        latest = await self.repository.get(saga.id)
                        return latest if latest is not None else saga
                return saga
            try:
                async with self._alive(saga):
                    await saga.run_step(spec, self.args, self.kwargs)
            except Exception:
                logger.warning(
                    "saga %s (%s): step %s failed; compensating",
                    saga.id,
                    saga.saga_type(),
                    spec.name,
                    exc_info=True,
                )
            await self.repository.add(saga)

    async def _compensate(self, saga: S) -> None:
        while True:
            try:
                async with self._alive(saga):
                    more = await saga.compensate_one(self.args, self.kwargs)
            except Exception:
                logger.exception("saga %s (%s): compensation failed", saga.id, saga.saga_type())
                await self.repository.add(saga)
                return
            await self.repository.add(saga)
            if not more:
                return

    async def handle_event(self, event: Any, *, correlation_id: str | None = None) -> S | None:
        """Deliver ``event`` to the saga waiting for it (found by correlation id).

        Returns the saga, or ``None`` when no saga of this class has that correlation id.
        A redelivered event (same ``event_id``) is ignored.
        """
        cid = correlation_id or getattr(event, "correlation_id", None)
        if cid is None:
            return None
        event_id = str(getattr(event, "event_id", "")) or None
        for attempt in range(3):
            saga = await self.repository.find_by_correlation_id(str(cid), self._saga_type())
            if saga is None:
                return None
            if event_id is not None and saga.has_handled(event_id):
                return saga
            event_type = str(getattr(event, "event_type", type(event).__name__))
            spec = saga.next_step()
            # The next step is what counts, not ``waiting_for``: a reply may arrive before the
            # orchestrator that sent the request has saved the wait.
            if saga.status is not SagaStatus.RUNNING or spec is None or spec.on_event != event_type:
                logger.info(
                    "saga %s (%s) is not waiting for %s; event ignored",
                    saga.id,
                    saga.saga_type(),
                    event_type,
                )
                return saga
            try:
                async with self._alive(saga):
                    await saga.run_step(spec, (event, *self.args), self.kwargs)
            except Exception:
                logger.warning("saga %s: event step %s failed", saga.id, spec.name, exc_info=True)
            if event_id is not None:
                saga.mark_event_handled(event_id)
            try:
                await self.repository.add(saga)
            except OptimisticConcurrencyError:
                if attempt == 2:
                    raise
                continue  # somebody else advanced it: reload and look again
            return await self.resume(saga)
        return None  # pragma: no cover

    async def expire(self, saga: S, *, now: datetime | None = None) -> S:
        """Compensate ``saga`` if its event wait has timed out."""
        now = now or utc_now()
        if saga.status is SagaStatus.RUNNING and saga.timeout_at and saga.timeout_at <= now:
            saga.fail(f"timed out waiting for {saga.waiting_for}", step=saga.next_step_name())
            await self.repository.add(saga)
        return await self.resume(saga)

    def _saga_type(self) -> str | None:
        saga_cls = getattr(self.repository, "saga_cls", None)
        return saga_cls.saga_type() if saga_cls is not None else None
