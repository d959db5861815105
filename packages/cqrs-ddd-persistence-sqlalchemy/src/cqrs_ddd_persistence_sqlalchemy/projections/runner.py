"""``ProjectionRunner``: a catch-up subscription that applies a projection exactly once.

Each batch is one transaction: the checkpoint is compare-and-set first (it locks the checkpoint
row), then the handlers write the read model, then both commit together. A crash anywhere rolls
the whole batch back, so a restarted runner resumes at the last committed checkpoint: no event
is applied twice and none is skipped. The events come from the event store's commit-safe
``read_all`` cursor (IEventStore port), so a subscriber never passes an event that commits late.

One runner per projection is active at a time: on PostgreSQL an advisory lock taken on a
connection of its own (other processes running the same service stand by and take over when it
is released or its connection dies); on SQLite a per-process lock (one runner process).

Error policy: a handler that raises is retried (the events before it in the batch are committed
first), then the runner stops with :class:`ProjectionHandlerError` naming the event.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import (
    Checkpoint,
    ErrorPolicy,
    ProgressCallback,
    Projection,
    ProjectionContext,
    ProjectionHandlerError,
    ProjectionProgress,
    WriteBuffer,
)
from cqrs_ddd_core.errors import ConcurrencyError, ConfigurationError, RetryableError
from cqrs_ddd_core.ports.event_store import IEventStore, StoredEvent
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

from .positions import SQLAlchemyProjectionPositionStore
from .store import SQLAlchemyProjectionStore

__all__ = ["ProjectionRunner"]

logger = logging.getLogger(__name__)


class _HandlerFailed(Exception):
    def __init__(self, index: int, error: BaseException, *, certain: bool = True) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error
        #: False when a buffered write failed: the culprit may be an earlier event.
        self.certain = certain


class _Lock(Protocol):
    """What the runner needs of a leadership lock (see ``postgres`` / ``sqlite`` modules)."""

    @property
    def held(self) -> bool: ...

    async def try_acquire(self) -> bool: ...

    async def check(self) -> bool: ...

    async def release(self) -> None: ...


def _engine_of(session_factory: Callable[[], AsyncSession]) -> AsyncEngine:
    if isinstance(session_factory, async_sessionmaker):
        bind = session_factory.kw.get("bind")
        if isinstance(bind, AsyncEngine):
            return bind
    session = session_factory()
    bind = session.bind
    if isinstance(bind, AsyncEngine):
        return bind
    raise ConfigurationError("ProjectionRunner needs engine= when the session factory has no bind")


class ProjectionRunner:
    """Runs one :class:`Projection` over the global event log.

    Args:
        projection: the projection (name, collections, handlers).
        event_store: any ``IEventStore`` (``read_all(after=cursor, limit=n)``).
        session_factory: sessions for the batch transactions.
        store: the read-model store handlers write to (default: a
            :class:`SQLAlchemyProjectionStore` on ``session_factory``).
        positions: the checkpoint store (default: on ``session_factory``).
        batch_size: events per transaction.
        error_policy: retries before stopping on a failing handler.
        poll_interval: seconds between polls when caught up (and between lock attempts).
        engine: the engine for the advisory-lock connection (default: the factory's bind).
        buffer_writes: queue the ``ctx.upsert`` writes of a batch and flush them with
            ``upsert_many`` before the checkpoint (reads through ``ctx`` flush first). When a
            buffered batch fails, it is replayed writing through to find the failing event.

    Example:
        >>> summaries = Projection("order_summaries", collections=["order_summaries"])
        >>> @summaries.on("OrderCreated")
        ... async def created(event, ctx):
        ...     await ctx.upsert("order_summaries", event.aggregate_id, dict(event.payload))
        >>> runner = ProjectionRunner(summaries, event_store=event_store,
        ...                           session_factory=session_factory)
        >>> await runner.run_once()          # catch up, return the number of events applied
        >>> await runner.rebuild(progress=print)   # reset + replay
        >>> await runner.run(stop=stop_event)      # follow the log until stop is set
    """

    def __init__(
        self,
        projection: Projection,
        *,
        event_store: IEventStore,
        session_factory: Callable[[], AsyncSession],
        store: SQLAlchemyProjectionStore | None = None,
        positions: SQLAlchemyProjectionPositionStore | None = None,
        batch_size: int = 500,
        error_policy: ErrorPolicy | None = None,
        poll_interval: float = 0.5,
        engine: AsyncEngine | None = None,
        buffer_writes: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.projection = projection
        self.event_store = event_store
        self.session_factory = session_factory
        self.store = store or SQLAlchemyProjectionStore(session_factory)
        for name, schema in projection.schemas.items():
            self.store.register(name, schema)
        self.positions = positions or SQLAlchemyProjectionPositionStore(session_factory)
        self.batch_size = batch_size
        self.error_policy = error_policy or ErrorPolicy()
        self.poll_interval = poll_interval
        self.buffer_writes = buffer_writes
        self.engine = engine or _engine_of(session_factory)
        self._lock: _Lock = self._make_lock()
        self._failures: dict[str, int] = {}
        self._read_filter: dict[str, Any] = {}
        types = projection.handlers.event_types
        if types and "event_types" in inspect.signature(event_store.read_all).parameters:
            # let the store skip events nobody here handles (cursor order is unchanged)
            self._read_filter["event_types"] = sorted(types)

    @property
    def name(self) -> str:
        return self.projection.name

    def _make_lock(self) -> _Lock:
        return dialect_for(self.engine).runner_lock(self.engine, self.name)

    # -- public API --------------------------------------------------------------------------
    async def status(self) -> Checkpoint | None:
        """The projection's checkpoint."""
        return await self.positions.get(self.name)

    async def run_once(
        self, *, progress: ProgressCallback | None = None, wait: bool = False
    ) -> int:
        """Apply every event committed after the checkpoint; return how many were applied.

        Raises:
            ConcurrencyError: another runner holds the projection (unless ``wait``).
            ProjectionHandlerError: a handler kept failing on one event.
        """
        async with self._leadership(wait=wait):
            await self._prepare()
            return await self._catch_up(progress)

    async def rebuild(self, *, progress: ProgressCallback | None = None, wait: bool = False) -> int:
        """Reset the projection (empty its collections and its checkpoint) and replay the log.

        ``progress`` is called after every committed batch and once when caught up. Returns the
        number of events replayed.
        """
        async with self._leadership(wait=wait):
            await self._prepare()
            async with SQLAlchemyUnitOfWork(self.session_factory) as uow:
                for collection in self.projection.collections:
                    await self.store.truncate(collection, uow=uow)
                await self.positions.reset(self.name, uow=uow)
                await uow.commit()
            logger.info("projection %s reset; replaying", self.name)
            return await self._catch_up(progress)

    async def run(
        self, *, stop: asyncio.Event | None = None, progress: ProgressCallback | None = None
    ) -> None:
        """Follow the log until ``stop`` is set.

        While another runner holds the projection this one stands by and polls the lock.
        Transient database errors (connection lost, serialization failures...) are retried
        with the error policy's backoff, indefinitely; a handler that keeps failing stops the
        runner with :class:`ProjectionHandlerError`.
        """
        self._not_running()
        stop = stop or asyncio.Event()
        outages = 0
        while not stop.is_set():
            try:
                if not await self._lock.try_acquire():
                    await _sleep(stop, self.poll_interval)
                    continue
                try:
                    await self._prepare()
                    while not stop.is_set():
                        if not await self._lock.check():
                            logger.warning("projection %s: lost its lock; standing by", self.name)
                            break
                        applied = await self._catch_up(progress, stop=stop)
                        outages = 0
                        if not applied:
                            await _sleep(stop, self.poll_interval)
                finally:
                    await self._lock.release()
            except RetryableError as exc:
                # a service outlives database restarts: back off and start over (the
                # checkpoint tells where); handler failures still stop the runner
                outages += 1
                delay = self.error_policy.delay(outages)
                logger.warning(
                    "projection %s: database unavailable (%s); retrying in %.1fs",
                    self.name,
                    exc,
                    delay,
                )
                await _sleep(stop, delay)

    # -- internals ---------------------------------------------------------------------------
    @asynccontextmanager
    async def _leadership(self, *, wait: bool) -> AsyncIterator[None]:
        self._not_running()
        while not await self._lock.try_acquire():
            if not wait:
                raise ConcurrencyError(f"projection {self.name!r} is being run by another runner")
            await asyncio.sleep(self.poll_interval)
        try:
            yield
        finally:
            await self._lock.release()

    def _not_running(self) -> None:
        if self._lock.held:
            raise ConcurrencyError(
                f"this runner of projection {self.name!r} is already running; "
                "use one runner object per task"
            )

    async def _prepare(self) -> None:
        for collection in self.projection.collections:
            await self.store.ensure_collection(
                collection, schema=self.projection.schemas.get(collection)
            )

    async def _catch_up(
        self, progress: ProgressCallback | None, *, stop: asyncio.Event | None = None
    ) -> int:
        applied = 0
        started = time.monotonic()
        checkpoint: Checkpoint | None = None
        while stop is None or not stop.is_set():
            checkpoint = await self.positions.get(self.name)
            expected = checkpoint.events_processed if checkpoint else 0
            cursor = checkpoint.cursor if checkpoint else None
            events, next_cursor = await self._read(cursor, self.batch_size)
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
            final = await self.positions.get(self.name)
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
        try:
            try:
                await self._commit(expected, events, next_cursor, buffered=self.buffer_writes)
            except _HandlerFailed as failed:
                if failed.certain:
                    raise
                # buffered writes hide which event broke the batch: replay it writing through
                await self._commit(expected, events, next_cursor, buffered=False)
        except ConcurrencyError:
            logger.warning("projection %s: checkpoint moved under us; re-reading", self.name)
            return 0
        except RetryableError as exc:
            key = f"db:{events[0].event_id}"
            attempts = self._failures[key] = self._failures.get(key, 0) + 1
            # A database blip is not the event's fault: it gets a larger budget than handler
            # failures before the error is raised (``run()`` then backs off and starts over).
            if attempts >= _TRANSIENT_ATTEMPTS * self.error_policy.max_attempts:
                raise
            logger.warning("projection %s: transient error (%s); retrying", self.name, exc)
            await asyncio.sleep(self.error_policy.delay(attempts))
            return 0
        except _HandlerFailed as failed:
            return await self._after_failure(expected, cursor, events, failed)
        self._failures.clear()
        return len(events)

    async def _after_failure(
        self,
        expected: int,
        cursor: str | None,
        events: list[StoredEvent],
        failed: _HandlerFailed,
    ) -> int:
        event = events[failed.index]
        attempts = self._failures[event.event_id] = self._failures.get(event.event_id, 0) + 1
        logger.warning(
            "projection %s: handler failed on event %s (%s, position %s), attempt %d/%d: %r",
            self.name,
            event.event_id,
            event.event_type,
            event.position,
            attempts,
            self.error_policy.max_attempts,
            failed.error,
        )
        applied = 0
        if failed.index > 0:
            # keep the work before the failing event: re-read exactly that prefix and commit it
            prefix, prefix_cursor = await self._read(cursor, failed.index)
            if [e.event_id for e in prefix] == [e.event_id for e in events[: failed.index]]:
                try:
                    await self._commit(expected, prefix, prefix_cursor, buffered=self.buffer_writes)
                    applied = len(prefix)
                except (_HandlerFailed, ConcurrencyError, RetryableError):
                    applied = 0
        if attempts >= self.error_policy.max_attempts:
            raise ProjectionHandlerError(self.name, event, attempts) from failed.error
        if failed.index == 0:
            await asyncio.sleep(self.error_policy.delay(attempts))
        return applied

    async def _read(self, cursor: str | None, limit: int) -> tuple[list[StoredEvent], str | None]:
        read: Any = self.event_store.read_all
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
        async with SQLAlchemyUnitOfWork(self.session_factory) as uow:
            # checkpoint first: its row lock makes a competing runner wait, then fail the CAS
            await self.positions.advance(
                self.name,
                cursor=next_cursor,
                position=events[-1].position,
                count=len(events),
                expected=expected,
                uow=uow,
            )
            buffer = WriteBuffer() if buffered else None
            for index, event in enumerate(events):
                ctx = ProjectionContext(self.name, self.store, event, uow, buffer)
                try:
                    await self.projection.apply(event, ctx)
                except RetryableError:
                    # the database failed under the handler (lost connection, deadlock):
                    # transient, not the event's fault; the whole batch is retried
                    raise
                except Exception as exc:
                    certain = buffer is None or not buffer.failed
                    raise _HandlerFailed(index, exc, certain=certain) from exc
            if buffer is not None:
                try:
                    await buffer.flush(self.store, uow)
                except RetryableError:
                    raise
                except Exception as exc:
                    raise _HandlerFailed(len(events) - 1, exc, certain=False) from exc
            await uow.commit()


#: Multiplier of ``ErrorPolicy.max_attempts`` for transient database errors of one batch.
_TRANSIENT_ATTEMPTS = 3


async def _report(progress: ProgressCallback, value: ProjectionProgress) -> None:
    result = progress(value)
    if inspect.isawaitable(result):
        await result


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
