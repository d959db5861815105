"""``ProjectionRunner``: a catch-up subscription that applies a projection exactly once.

The events come from the event store's commit-safe ``read_all`` cursor (IEventStore port), so
a runner never passes an event that commits late; each batch commits its read-model writes and
its checkpoint together (see :mod:`.batches`).

One runner per projection is active at a time: the runner holds the projection's fenced
:class:`~cqrs_ddd_persistence_sqlalchemy.leases.Lease` (name ``projection:<name>``, a row of
``cqrs_leases``) on both dialects. Other runners — in this process or others — stand by and take
over when it is released (a runner that stops) or has expired (a runner that died: at most
``lease_duration`` seconds). Every batch transaction starts with the lease's fence: a runner
whose token is no longer the current one has its batch refused (:class:`LeaseLostError`, rolled
back, nothing written) and stands by again. The lease needs no session state and holds no
transaction open, so it works behind a transaction-mode pooler too.

The runner starts and stops like every worker of the library
(:class:`~cqrs_ddd_persistence_sqlalchemy.workers.WorkerLifecycle`): ``await runner.run()``
follows the log until ``runner.stop()``; ``await runner.run_once()`` catches up and returns.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import (
    Checkpoint,
    ErrorPolicy,
    ProgressCallback,
    Projection,
)
from cqrs_ddd_core.errors import (
    ConcurrencyError,
    ConfigurationError,
    LeaseLostError,
    RetryableError,
)
from cqrs_ddd_core.ports.event_store import IEventStore
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.leases import Lease
from cqrs_ddd_persistence_sqlalchemy.leases.lease import lease_timing
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.workers import WorkerLifecycle

from .batches import BatchApplier
from .positions import SQLAlchemyProjectionPositionStore
from .running import one_bind
from .store import SQLAlchemyProjectionStore

__all__ = ["ProjectionRunner"]

logger = logging.getLogger(__name__)


class ProjectionRunner(WorkerLifecycle):
    """Runs one :class:`Projection` over the global event log.

    Args:
        projection: the projection (name, collections, handlers).
        bind: where the batch transactions run — an engine, session factory, session, unit of
            work or unit-of-work factory (see :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`);
            ``session_factory=`` is the same by its earlier name. The runner commits its own
            transactions: a session or unit of work stands for the database behind it.
        event_store: any ``IEventStore`` (``read_all(after=cursor, limit=n)``).
        store: the read-model store handlers write to (default: a
            :class:`SQLAlchemyProjectionStore` on ``bind``).
        positions: the checkpoint store (default: on ``bind``).
        batch_size: events per transaction.
        error_policy: retries before stopping on a failing handler.
        poll_interval: seconds between polls when caught up (and between lease attempts).
        engine: the engine of the lease's statements (default: the one behind ``bind``).
        lease_duration: seconds the projection's lease lasts after its last renewal: how long a
            runner that died keeps the others waiting. Keep it longer than the longest batch:
            a batch renews the lease when it starts, and a standby may take over once a batch
            has outlasted it (that batch still commits; the runner's next one is refused).
        lease_renew_interval: seconds between renewals while caught up (default: a third of
            ``lease_duration``); every batch renews it too.
        buffer_writes: queue the ``ctx.upsert`` writes of a batch and flush them with
            ``upsert_many`` before the checkpoint (reads through ``ctx`` flush first). When a
            buffered batch fails, it is replayed writing through to find the failing event.

    Example:
        >>> summaries = Projection("order_summaries", collections=["order_summaries"])
        >>> @summaries.on("OrderCreated")
        ... async def created(event, ctx):
        ...     await ctx.upsert("order_summaries", event.aggregate_id, dict(event.payload))
        >>> runner = ProjectionRunner(summaries, session_factory, event_store=event_store)
        >>> await runner.run_once()          # catch up, return the number of events applied
        >>> await runner.rebuild(progress=print)   # reset + replay
        >>> task = asyncio.create_task(runner.run())   # follow the log ...
        >>> await runner.stop()                        # ... until stopped
    """

    def __init__(
        self,
        projection: Projection,
        bind: Bind = None,
        *,
        event_store: IEventStore,
        session_factory: Bind = None,
        store: SQLAlchemyProjectionStore | None = None,
        positions: SQLAlchemyProjectionPositionStore | None = None,
        batch_size: int = 500,
        error_policy: ErrorPolicy | None = None,
        poll_interval: float = 0.5,
        engine: AsyncEngine | None = None,
        buffer_writes: bool = True,
        lease_duration: float = 15.0,
        lease_renew_interval: float | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        given = one_bind(bind, session_factory, "ProjectionRunner")
        if given is None:
            given = engine
        if given is None:
            raise ConfigurationError(
                "ProjectionRunner needs a bind: an AsyncEngine, an async_sessionmaker, an "
                "AsyncSession, a SQLAlchemyUnitOfWork or a factory of units of work"
            )
        self.binding = Binding(_own_database(given), owner="ProjectionRunner")
        self.projection = projection
        self.event_store = event_store
        self.store = store or SQLAlchemyProjectionStore(self.binding)
        for name, schema in projection.schemas.items():
            self.store.register(name, schema)
        self.positions = positions or SQLAlchemyProjectionPositionStore(self.binding)
        self.batch_size = batch_size
        self.error_policy = error_policy or ErrorPolicy()
        self.poll_interval = poll_interval
        self.buffer_writes = buffer_writes
        self._engine = engine
        lease_timing(lease_duration, lease_renew_interval)  # refused here, not at first run
        self.lease_duration = lease_duration
        self.lease_renew_interval = lease_renew_interval
        self._lease: Lease | None = None
        self._outages = 0  # consecutive database outages of run()
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._batches = BatchApplier(self)

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def engine(self) -> AsyncEngine:
        """The engine of the lease (``engine=``, else the one behind the bind)."""
        engine = self._engine if self._engine is not None else self.binding.engine
        if engine is None:
            raise ConfigurationError(
                f"ProjectionRunner {self.name!r}: its bind has no engine behind it; pass engine="
            )
        return engine

    @property
    def lease(self) -> Lease:
        """The projection's lease, ``projection:<name>`` (made on first use)."""
        if self._lease is None:
            self._lease = Lease(
                self.engine,
                f"projection:{self.name}",
                duration=self.lease_duration,
                renew_interval=self.lease_renew_interval,
            )
        return self._lease

    def unit_of_work(self) -> SQLAlchemyUnitOfWork:
        """A unit of work for one batch (the runner commits it): on the bind's session
        factory, else on sessions of its engine."""
        factory = self.binding.session_factory
        if factory is not None:
            return SQLAlchemyUnitOfWork(factory)
        if self._sessions is None:
            self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        return SQLAlchemyUnitOfWork(self._sessions)

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
            LeaseLostError: another runner took the projection over (the batch in flight was
                refused and rolled back).
            ProjectionHandlerError: a handler kept failing on one event.
        """
        async with self._leadership(wait=wait):
            await self._prepare()
            return await self._batches.catch_up(progress)

    async def rebuild(self, *, progress: ProgressCallback | None = None, wait: bool = False) -> int:
        """Reset the projection (empty its collections and its checkpoint) and replay the log.

        ``progress`` is called after every committed batch and once when caught up. Returns the
        number of events replayed.
        """
        async with self._leadership(wait=wait):
            await self._prepare()
            async with self.unit_of_work() as uow:
                await self.lease.fence(uow)
                for collection in self.projection.collections:
                    await self.store.truncate(collection, uow=uow)
                await self.positions.reset(self.name, uow=uow)
                await uow.commit()
            logger.info("projection %s reset; replaying", self.name)
            return await self._batches.catch_up(progress)

    async def run(
        self, *, stop: asyncio.Event | None = None, progress: ProgressCallback | None = None
    ) -> None:
        """Follow the log until :meth:`stop` is called (``await runner.stop()`` also waits
        until this returns; the batch in flight is committed first).

        While another runner holds the projection this one stands by and polls its lease
        (every ``poll_interval``); a runner whose batch is refused by the lease's fence (another
        runner took over) stands by again.
        Transient database errors (connection lost, serialization failures...) are retried
        with the error policy's backoff, indefinitely; a handler that keeps failing stops the
        runner with :class:`ProjectionHandlerError`.

        ``stop=`` (an ``asyncio.Event``) is deprecated: call :meth:`stop` instead.
        """
        self._not_running()
        if stop is not None:
            warnings.warn(
                "ProjectionRunner.run(stop=event) is deprecated and will be removed in the next "
                "release: call runner.stop() (await it to wait until run() has returned)",
                DeprecationWarning,
                stacklevel=2,
            )
            if stop.is_set():
                self.stop()
        async with self.running():
            watcher = asyncio.create_task(self._stop_on(stop)) if stop is not None else None
            try:
                await self._follow(progress)
            finally:
                if watcher is not None:
                    watcher.cancel()

    # -- internals ---------------------------------------------------------------------------
    async def _stop_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self.stop()

    async def _follow(self, progress: ProgressCallback | None) -> None:
        self._outages = 0
        while not self.stopping:
            try:
                if not await self.lease.acquire():
                    await self.sleep(self.poll_interval)
                    continue
                try:
                    await self._lead(progress)
                except LeaseLostError as exc:
                    logger.warning("projection %s: %s; standing by", self.name, exc)
                finally:
                    await self.lease.release()
            except RetryableError as exc:
                # a service outlives database restarts: back off and start over (the
                # checkpoint tells where); handler failures still stop the runner
                self._outages += 1
                delay = self.error_policy.delay(self._outages)
                logger.warning(
                    "projection %s: database unavailable (%s); retrying in %.1fs",
                    self.name,
                    exc,
                    delay,
                )
                await self.sleep(delay)

    async def _lead(self, progress: ProgressCallback | None) -> None:
        """Apply batches while this runner holds the lease and is not stopped."""
        lease = self.lease
        await self._prepare()
        # renew at least as often as the lease asks while idle (batches renew it themselves)
        idle = min(self.poll_interval, lease.renew_interval)
        while not self.stopping:
            if not await lease.keep():
                logger.warning("projection %s: lost its lease; standing by", self.name)
                return
            applied = await self._batches.catch_up(progress, stopping=lambda: self.stopping)
            self._outages = 0
            if not applied:
                await self.sleep(idle)

    @asynccontextmanager
    async def _leadership(self, *, wait: bool) -> AsyncIterator[None]:
        self._not_running()
        while not await self.lease.acquire():
            if not wait:
                raise ConcurrencyError(f"projection {self.name!r} is being run by another runner")
            await asyncio.sleep(self.poll_interval)
        try:
            yield
        finally:
            await self.lease.release()

    def _not_running(self) -> None:
        if self.is_running or (self._lease is not None and self._lease.token is not None):
            raise ConcurrencyError(
                f"this runner of projection {self.name!r} is already running; "
                "use one runner object per task"
            )

    async def _prepare(self) -> None:
        for collection in self.projection.collections:
            await self.store.ensure_collection(
                collection, schema=self.projection.schemas.get(collection)
            )

    def __repr__(self) -> str:
        return f"<ProjectionRunner {self.name!r}>"


def _own_database(bind: Any) -> Any:
    """What the runner's own transactions run on. A worker commits batch after batch, so a
    session or unit of work given as its bind stands for the database behind it (its session
    factory or engine), never for a transaction to join."""
    if isinstance(bind, SQLAlchemyUnitOfWork):
        if bind.session_factory is not None:
            return bind.session_factory
        bind = bind.borrowed_session
    if isinstance(bind, AsyncSession):
        if not isinstance(bind.bind, AsyncEngine):
            raise ConfigurationError(
                "ProjectionRunner was given a session bound to no AsyncEngine: pass the engine "
                "or a session factory"
            )
        return bind.bind
    return bind
