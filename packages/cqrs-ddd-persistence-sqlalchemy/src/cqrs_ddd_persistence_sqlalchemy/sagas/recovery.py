"""``SagaRecoveryWorker``: resumes stalled sagas and compensates timed-out ones.

Due saga rows (see :mod:`.repository`) are claimed through :class:`~..queue.DurableQueue` (lease
+ fencing token, ``SKIP LOCKED`` on PostgreSQL), so one stalled or timed-out saga is resumed by
exactly one worker. A recovery that fails is retried after the backoff and, after
``max_attempts`` failures in a row, dead-lettered: :meth:`SagaRecoveryWorker.dead_letters` lists
those sagas, :meth:`~SagaRecoveryWorker.requeue` brings them back (a save of the saga does too).

It starts and stops as every worker of the library does (:class:`~..workers.WorkerLifecycle`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from cqrs_ddd_advanced_core.jobs import Backoff
from cqrs_ddd_advanced_core.sagas.orchestrator import SagaOrchestrator
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.errors import ConfigurationError, OptimisticConcurrencyError, RetryableError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind
from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, QueueStats
from cqrs_ddd_persistence_sqlalchemy.sagas.repository import SQLAlchemySagaRepository
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.workers import WorkerLifecycle

__all__ = ["SagaRecoveryWorker"]

logger = logging.getLogger(__name__)

#: A failed recovery is tried again after a minute, every time (as before the limit existed).
DEFAULT_RECOVERY_BACKOFF = Backoff(base=60.0, factor=1.0, maximum=60.0)


class SagaRecoveryWorker(WorkerLifecycle):
    """Resumes stalled sagas and compensates timed-out ones, one worker per saga.

    Due sagas are claimed through the durable queue (lease + fencing token), resumed with
    their orchestrator, and their lease released.

    Args:
        orchestrators: one :class:`SagaOrchestrator` per saga class, each built on a
            :class:`SQLAlchemySagaRepository`.
        bind: engine or session factory for the claims.
        lease_seconds: how long a claimed saga is exclusive while it is being resumed.
        batch_size: sagas claimed at a time.
        poll_interval: seconds :meth:`run` waits when nothing was due.
        max_attempts: failed recoveries in a row after which a saga is dead-lettered.
        backoff: the wait before a failed recovery is tried again (default: one minute).

    Example::

        worker = SagaRecoveryWorker([SagaOrchestrator(saga_repo, args=(payments,))], engine)
        resumed = await worker.run_once()
    """

    def __init__(
        self,
        orchestrators: Iterable[SagaOrchestrator[Any]],
        bind: Bind,
        *,
        lease_seconds: float = 300.0,
        batch_size: int = 10,
        poll_interval: float = 5.0,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self._by_type: dict[str, SagaOrchestrator[Any]] = {}
        self._repositories: dict[str, SQLAlchemySagaRepository[Any]] = {}
        for orchestrator in orchestrators:
            repo = orchestrator.repository
            if not isinstance(repo, SQLAlchemySagaRepository):
                raise ConfigurationError(
                    "SagaRecoveryWorker needs orchestrators built on SQLAlchemySagaRepository, "
                    f"got {type(repo).__name__}"
                )
            self._by_type[repo.saga_type] = orchestrator
            self._repositories[repo.saga_type] = repo
        self.queue = DurableQueue(
            sagas_table,
            bind,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            backoff=backoff or DEFAULT_RECOVERY_BACKOFF,
        )
        self.batch_size = batch_size
        self.poll_interval = poll_interval

    # -- lifecycle -------------------------------------------------------------------------
    async def run_once(self) -> int:
        """Claim and process one batch; return how many sagas were processed."""
        claims = await self.queue.claim(self.batch_size, only={"saga_type": list(self._by_type)})
        for claim in claims:
            saga_type = claim["saga_type"]
            orchestrator = self._by_type[saga_type]
            repo = self._repositories[saga_type]
            saga = repo.load(claim.values)
            loaded_version = saga.version
            try:
                if saga.is_suspended:
                    await orchestrator.expire(saga)
                else:
                    await orchestrator.resume(saga)
                if saga.version == loaded_version:
                    # Nothing to do yet (e.g. the wait has not expired): save to reschedule.
                    await repo.add(saga)
            except OptimisticConcurrencyError:
                logger.info("saga %s was advanced by another process meanwhile", saga.id)
            except Exception as exc:
                outcome = await self.queue.fail([claim], error=f"{type(exc).__name__}: {exc}")
                if outcome.dead:
                    logger.exception(
                        "recovering saga %s failed for the last time: dead-lettered", saga.id
                    )
                else:
                    logger.exception("recovering saga %s failed; retrying later", saga.id)
                continue
            await self.queue.release([claim])
        return len(claims)

    async def run(self, *, poll_interval: float | None = None) -> None:
        """Loop until :meth:`stop` (``poll_interval=`` here is deprecated: pass it to the
        constructor)."""
        if poll_interval is not None:
            renamed(
                "SagaRecoveryWorker.run(poll_interval=...)",
                "SagaRecoveryWorker(..., poll_interval=...)",
            )
            self.poll_interval = poll_interval
        async with self.running():
            while not self.stopping:
                try:
                    processed = await self.run_once()
                except RetryableError:
                    logger.warning("saga recovery: database unavailable; retrying", exc_info=True)
                    processed = 0
                if processed == 0:
                    await self.sleep(self.poll_interval)

    # -- the queue's administrative verbs ------------------------------------------------------
    async def dead_letters(
        self, limit: int = 100, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> list[SagaState]:
        """Sagas (of this worker's types) whose recovery failed ``max_attempts`` times in a
        row, oldest first; ``saga.error`` is theirs, the recovery's error is in the row."""
        rows = await self.queue.dead_letters(limit, where=self._mine(), uow=uow)
        return [self._repositories[r["saga_type"]].load(r) for r in rows]

    async def requeue(
        self, saga_ids: Iterable[str] | None = None, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int:
        """Dead-lettered sagas (all of this worker's types, or ``saga_ids``) due again now."""
        where = self._mine()
        if saga_ids is not None:
            where = where & sagas_table.c.saga_id.in_([str(i) for i in saga_ids])
        return await self.queue.requeue(where=where, uow=uow)

    async def stats(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> QueueStats:
        """The saga table as a queue (every saga type): unfinished, being recovered, waiting,
        finished and dead-lettered sagas, and how long the oldest due one has waited."""
        return await self.queue.stats(uow=uow)

    def _mine(self) -> Any:
        return sagas_table.c.saga_type.in_(list(self._by_type))
