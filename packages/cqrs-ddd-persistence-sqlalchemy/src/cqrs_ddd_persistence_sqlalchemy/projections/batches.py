"""Catching a projection up with the log, one batch per transaction, with progress reports.

Each batch is one unit of work: the runner's lease is fenced first (a runner that is no longer
the lease's current holder gets :class:`LeaseLostError` and writes nothing), the checkpoint is
compare-and-set (it locks the checkpoint row), then the handlers write the read model, then all
commit together. A crash anywhere rolls
the whole batch back, so the next catch-up starts at the last committed checkpoint: no event is
applied twice and none is skipped.

Error policy: a handler that raises is retried (the events before it in the batch are committed
first), then catching up stops with :class:`ProjectionHandlerError` naming the event. A
database error under a batch (lost connection, deadlock) is not the event's fault: the batch is
retried with a larger budget before the error is raised.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cqrs_ddd_advanced_core.projections import (
    Checkpoint,
    ProgressCallback,
    ProjectionContext,
    ProjectionHandlerError,
    ProjectionProgress,
    WriteBuffer,
)
from cqrs_ddd_core.errors import ConcurrencyError, RetryableError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import (
    links_to,
    span,
    stored_context,
    tracer_for,
)

if TYPE_CHECKING:
    from .runner import ProjectionRunner

__all__ = ["BatchApplier"]

logger = logging.getLogger(__name__)

#: Multiplier of ``ErrorPolicy.max_attempts`` for transient database errors of one batch.
_TRANSIENT_ATTEMPTS = 3


class _HandlerFailed(Exception):
    def __init__(self, index: int, error: BaseException, *, certain: bool = True) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error
        #: False when a buffered write failed: the culprit may be an earlier event.
        self.certain = certain


class BatchApplier:
    """Applies a runner's projection to the events after its checkpoint (see module doc).

    It reads the runner's settings (store, positions, batch size, error policy, write
    buffering) at every batch, so they may be changed between runs.
    """

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner
        #: failed attempts per event id (``db:<id>`` for database errors under a batch)
        self._failures: dict[str, int] = {}
        self._read_filter: dict[str, Any] = {}
        types = runner.projection.handlers.event_types
        read_all = runner.event_store.read_all
        if types and "event_types" in inspect.signature(read_all).parameters:
            # let the store skip events nobody here handles (cursor order is unchanged)
            self._read_filter["event_types"] = sorted(types)

    @property
    def name(self) -> str:
        return self.runner.name

    async def catch_up(
        self, progress: ProgressCallback | None, *, stopping: Callable[[], bool] | None = None
    ) -> int:
        """Apply the events committed after the checkpoint, batch by batch, until none is left
        (or ``stopping()`` says so between batches); return how many were applied.

        ``progress`` is called after every committed batch and once when caught up.
        """
        runner = self.runner
        applied = 0
        started = time.monotonic()
        checkpoint: Checkpoint | None = None
        while stopping is None or not stopping():
            checkpoint = await runner.positions.get(self.name)
            expected = checkpoint.events_processed if checkpoint else 0
            cursor = checkpoint.cursor if checkpoint else None
            events, next_cursor = await self._read(cursor, runner.batch_size)
            if not events:
                break
            done = await self._apply_page(expected, cursor, events, next_cursor)
            applied += done
            if done and progress is not None:
                await _report(
                    progress,
                    ProjectionProgress(
                        projection=self.name,
                        events_processed=expected + done,
                        batch_size=done,
                        position=events[done - 1].position,
                        elapsed=time.monotonic() - started,
                        caught_up=False,
                    ),
                )
        if applied and progress is not None:
            final = await runner.positions.get(self.name)
            await _report(
                progress,
                ProjectionProgress(
                    projection=self.name,
                    events_processed=final.events_processed if final else 0,
                    batch_size=0,
                    position=final.position if final else None,
                    elapsed=time.monotonic() - started,
                    caught_up=True,
                ),
            )
        return applied

    async def _apply_page(
        self,
        expected: int,
        cursor: str | None,
        events: list[StoredEvent],
        next_cursor: str | None,
    ) -> int:
        buffered = self.runner.buffer_writes
        try:
            try:
                await self._commit(expected, events, next_cursor, buffered=buffered)
            except _HandlerFailed as failed:
                if failed.certain:
                    raise
                # buffered writes hide which event broke the batch: replay it writing through
                await self._commit(expected, events, next_cursor, buffered=False)
        except ConcurrencyError:
            logger.warning("projection %s: checkpoint moved under us; re-reading", self.name)
            return 0
        except RetryableError as exc:
            if await self._landed(expected, len(events), next_cursor):
                # The commit was durable before the connection went (only its reply was
                # lost): the batch is applied, and counted as such.
                self._failures.clear()
                return len(events)
            policy = self.runner.error_policy
            key = f"db:{events[0].event_id}"
            attempts = self._failures[key] = self._failures.get(key, 0) + 1
            # A database blip is not the event's fault: it gets a larger budget than handler
            # failures before the error is raised (``run()`` then backs off and starts over).
            if attempts >= _TRANSIENT_ATTEMPTS * policy.max_attempts:
                raise
            logger.warning("projection %s: transient error (%s); retrying", self.name, exc)
            await asyncio.sleep(policy.delay(attempts))
            return 0
        except _HandlerFailed as failed:
            return await self._after_failure(expected, cursor, events, failed)
        self._failures.clear()
        return len(events)

    async def _landed(self, expected: int, count: int, next_cursor: str | None) -> bool:
        """Whether the checkpoint stands where this batch's commit puts it (``events_processed``
        is the checkpoint's compare-and-set token: only a committed batch moves it so)."""
        try:
            now = await self.runner.positions.get(self.name)
        except RetryableError:
            return False  # still unavailable: the batch is retried, its commit refused if done
        return (
            now is not None
            and now.events_processed == expected + count
            and now.cursor == next_cursor
        )

    async def _after_failure(
        self,
        expected: int,
        cursor: str | None,
        events: list[StoredEvent],
        failed: _HandlerFailed,
    ) -> int:
        policy = self.runner.error_policy
        event = events[failed.index]
        attempts = self._failures[event.event_id] = self._failures.get(event.event_id, 0) + 1
        logger.warning(
            "projection %s: handler failed on event %s (%s, position %s), attempt %d/%d: %r",
            self.name,
            event.event_id,
            event.event_type,
            event.position,
            attempts,
            policy.max_attempts,
            failed.error,
        )
        applied = 0
        if failed.index > 0:
            # keep the work before the failing event: re-read exactly that prefix and commit it
            prefix, prefix_cursor = await self._read(cursor, failed.index)
            if [e.event_id for e in prefix] == [e.event_id for e in events[: failed.index]]:
                try:
                    await self._commit(
                        expected, prefix, prefix_cursor, buffered=self.runner.buffer_writes
                    )
                    applied = len(prefix)
                except (_HandlerFailed, ConcurrencyError, RetryableError):
                    applied = 0
        if attempts >= policy.max_attempts:
            raise ProjectionHandlerError(self.name, event, attempts) from failed.error
        if failed.index == 0:
            await asyncio.sleep(policy.delay(attempts))
        return applied

    async def _read(self, cursor: str | None, limit: int) -> tuple[list[StoredEvent], str | None]:
        read: Any = self.runner.event_store.read_all
        events, next_cursor = await read(after=cursor, limit=limit, **self._read_filter)
        return list(events), next_cursor

    async def _commit(
        self,
        expected: int,
        events: list[StoredEvent],
        next_cursor: str | None,
        *,
        buffered: bool,
    ) -> None:
        engine = self.runner.binding.engine
        if tracer_for(engine) is None:
            await self._commit_batch(expected, events, next_cursor, buffered=buffered)
            return
        # One batch serves the traces of many requests: linked, not parented.
        attributes = {
            "messaging.system": "cqrs_events",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": self.name,
            "messaging.batch.message_count": len(events),
        }
        links = links_to(e.metadata for e in events)
        with span(f"process {self.name}", attributes, engine=engine, links=links):
            await self._commit_batch(expected, events, next_cursor, buffered=buffered)

    async def _commit_batch(
        self,
        expected: int,
        events: list[StoredEvent],
        next_cursor: str | None,
        *,
        buffered: bool,
    ) -> None:
        runner = self.runner
        store = runner.store
        traced = tracer_for(runner.binding.engine) is not None
        async with runner.unit_of_work() as uow:
            # the fence first: a stale leader's batch is refused before it writes anything
            await runner.lease.fence(uow)
            # then the checkpoint: its row lock makes a competing runner wait, then fail the CAS
            await runner.positions.advance(
                self.name,
                cursor=next_cursor,
                position=events[-1].position,
                count=len(events),
                expected=expected,
                uow=uow,
            )
            buffer = WriteBuffer() if buffered else None
            for index, event in enumerate(events):
                ctx = ProjectionContext(self.name, store, event, uow, buffer)
                try:
                    if traced:
                        await self._apply_traced(event, ctx)
                    else:
                        await runner.projection.apply(event, ctx)
                except RetryableError:
                    # the database failed under the handler (lost connection, deadlock):
                    # transient, not the event's fault; the whole batch is retried
                    raise
                except Exception as exc:
                    certain = buffer is None or not buffer.failed
                    raise _HandlerFailed(index, exc, certain=certain) from exc
            if buffer is not None:
                try:
                    await buffer.flush(store, uow)
                except RetryableError:
                    raise
                except Exception as exc:
                    raise _HandlerFailed(len(events) - 1, exc, certain=False) from exc
            await uow.commit()

    async def _apply_traced(self, event: StoredEvent, ctx: ProjectionContext) -> None:
        """Handle ``event`` under a span continuing the trace stored with it."""
        attributes = {
            "messaging.system": "cqrs_events",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": self.name,
            "messaging.destination.name": event.event_type,
            "messaging.message.id": event.event_id,
        }
        with span(
            f"handle {event.event_type}",
            attributes,
            engine=self.runner.binding.engine,
            kind="consumer",
            context=stored_context(event.metadata),
        ):
            await self.runner.projection.apply(event, ctx)


async def _report(progress: ProgressCallback, value: ProjectionProgress) -> None:
    result = progress(value)
    if inspect.isawaitable(result):
        await result
