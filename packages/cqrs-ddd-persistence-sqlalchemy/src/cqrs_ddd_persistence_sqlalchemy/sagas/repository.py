"""``SQLAlchemySagaRepository``: saga state with optimistic concurrency.

The saga table is a durable-queue table (``queue_columns``): a saga that still has work to do is
a *pending* queue row whose ``available_at`` says when somebody should look at it if nobody
saved it in the meantime —

- RUNNING / COMPENSATING: ``now + stall_after`` at every save (the orchestrator saves after
  every step, so a live saga keeps pushing it forward; a crashed one becomes due);
- waiting for an event: its ``timeout_at`` (never, without a timeout);
- COMPLETED / COMPENSATED / FAILED: the queue row is *done*.

:class:`~.recovery.SagaRecoveryWorker` claims due rows through :class:`~..queue.DurableQueue`;
the version check on every save stops a slow original worker from overwriting the recovered
one. Every save also resets the row's failed recovery attempts (the saga moved on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import func, insert, select, update

from cqrs_ddd_advanced_core.sagas.state import SagaState, SagaStatus
from cqrs_ddd_core.domain.aggregate_root import set_persisted_version
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import (
    CQRSDDDError,
    OptimisticConcurrencyError,
    PersistenceError,
)
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed, renamed_argument
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span
from cqrs_ddd_persistence_sqlalchemy.queue import DONE, PENDING
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import (
    UQ_SAGA_CORRELATION,
    UQ_SAGA_ID,
    sagas_table,
)
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["NEVER", "SQLAlchemySagaRepository"]

S = TypeVar("S", bound=SagaState)

#: ``available_at`` of a saga nobody needs to look at (waiting without a timeout, not started).
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


def _conflict(kind: str) -> Any:
    def make(error: PersistenceError) -> CQRSDDDError:
        return OptimisticConcurrencyError(f"saga {kind} already exists: {error}")

    return make


_CONSTRAINTS = {UQ_SAGA_ID: _conflict("id"), UQ_SAGA_CORRELATION: _conflict("correlation id")}


class SQLAlchemySagaRepository(Generic[S]):
    """Stores sagas of ``saga_cls`` (one row each) with optimistic concurrency.

    Args:
        saga_cls: the :class:`SagaState` subclass; its ``saga_type()`` is stored and queried.
        bind: session factory / engine / session / unit of work used when no ``uow=`` is given
            and no unit of work is ambient (then each call commits a short transaction;
            ``session_factory=`` is its deprecated name).
        stall_after: how long an active saga may go without a save before recovery takes it.

    Example::

        saga_repo = SQLAlchemySagaRepository(OrderFulfillmentSaga)
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            saga = OrderFulfillmentSaga(order_id="123")
            await saga.process_payment(payment_service)
            await saga_repo.add(saga, uow=uow)
            await uow.commit()
    """

    def __init__(
        self,
        saga_cls: type[S],
        bind: Bind = None,
        *,
        session_factory: Bind = None,
        stall_after: timedelta = timedelta(minutes=5),
    ) -> None:
        bind = renamed_argument(
            "SQLAlchemySagaRepository", "session_factory", "bind", session_factory, bind
        )
        self.saga_cls = saga_cls
        self.saga_type = saga_cls.saga_type()
        self.stall_after = stall_after
        self.binding = Binding(bind, owner="SQLAlchemySagaRepository")
        self.table = sagas_table

    @property
    def source(self) -> Binding:
        """Deprecated: :attr:`binding`."""
        renamed("SQLAlchemySagaRepository.source", "binding", stacklevel=3)
        return self.binding

    # -- writes ----------------------------------------------------------------------------
    async def add(self, saga: S, *, uow: SQLAlchemyUnitOfWork | None = None) -> None:
        """Insert a new saga or update a loaded one, checking its version.

        The saga's ``version`` moves on once the write is committed (in ``uow``'s commit when
        one is used). A stale saga raises ``OptimisticConcurrencyError``; so does a second saga
        of the same type with the same correlation id.
        """
        joined = self.binding.resolve_uow(uow)
        expected = saga.version
        if joined is not None:
            pending = joined.pending_version(saga)
            expected = pending if pending is not None else expected
        values = self._row(saga)
        with db_span(
            self.binding.engine,
            # The orchestrator saves after every step: a step while running, a compensation
            # while compensating.
            "saga compensation" if saga.status is SagaStatus.COMPENSATING else "saga step",
            self.table.name,
        ):
            await self._write(saga, expected, values, joined)
        if joined is not None:
            joined.register(saga, new_version=expected + 1)
        else:
            set_persisted_version(saga, expected + 1)

    async def _write(
        self, saga: S, expected: int, values: dict[str, Any], joined: SQLAlchemyUnitOfWork | None
    ) -> None:
        t = self.table
        async with self.binding.transaction(joined, constraints=_CONSTRAINTS) as executor:
            if expected == 0:
                await executor.execute(insert(t).values(version=1, **values))
            else:
                written = await executor.fetch(
                    update(t)
                    .where(t.c.saga_id == saga.id, t.c.version == expected)
                    .values(version=expected + 1, **values)
                    .returning(t.c.id)
                )
                if not written:
                    raise await self._stale(executor, saga, expected)

    save = add

    async def keep_alive(self, saga: S) -> bool:
        """Push an active saga's stall deadline ``stall_after`` ahead without a new version
        (the orchestrator calls this during long steps). False if the saga was saved by
        someone else meanwhile."""
        if self.binding.session_factory is None or not self.binding.owns_transaction():
            # Inside a caller's transaction nothing is visible to recovery workers yet.
            return False
        t = self.table
        now = utc_now()
        stmt = (
            update(t)
            .where(t.c.saga_id == saga.id, t.c.version == saga.version, t.c.status == PENDING)
            .values(available_at=now + self.stall_after, updated_at=now)
            .returning(t.c.id)
        )
        execution = self.binding.own_execution()
        if execution is not None:  # one statement, atomic on its own
            return bool(await execution.fetch(stmt))
        async with self.binding.transaction() as executor:
            return bool(await executor.fetch(stmt))

    async def _stale(self, executor: Executor, saga: S, expected: int) -> CQRSDDDError:
        t = self.table
        found = await executor.fetch(select(t.c.version).where(t.c.saga_id == saga.id))
        actual = found[0][0] if found else None
        return OptimisticConcurrencyError(
            f"saga {saga.id} ({self.saga_type}): expected version {expected}, found {actual}",
            entity_type=self.saga_type,
            entity_id=saga.id,
            expected_version=expected,
            actual_version=actual,
        )

    def _row(self, saga: S) -> dict[str, Any]:
        now = utc_now()
        status = saga.status
        if status.is_terminal:
            queue_status, available = DONE, now
        elif status is SagaStatus.PENDING:
            queue_status, available = PENDING, NEVER
        elif saga.is_suspended:
            queue_status, available = PENDING, saga.timeout_at or NEVER
        else:
            queue_status, available = PENDING, now + self.stall_after
        return {
            "saga_id": saga.id,
            "saga_type": self.saga_type,
            "correlation_id": saga.correlation_id,
            "saga_status": status.value,
            "waiting_for": saga.waiting_for,
            "timeout_at": saga.timeout_at,
            "error": saga.error,
            "state": saga.model_dump(mode="json"),
            "updated_at": now,
            "status": queue_status,
            "available_at": available,
            "finished_at": now if status.is_terminal else None,
            # Failed recovery attempts count from the last save: the saga moved on since.
            "attempts": 0,
        }

    # -- reads -----------------------------------------------------------------------------
    def load(self, row: Mapping[Any, Any]) -> S:
        """A saga from a table row (``state`` + ``version``)."""
        saga = self.saga_cls.model_validate(row["state"])
        set_persisted_version(saga, int(row["version"]))
        return saga

    async def _one(self, where: Any, uow: SQLAlchemyUnitOfWork | None) -> S | None:
        t = self.table
        stmt = select(t.c.state, t.c.version).where(t.c.saga_type == self.saga_type, where)
        async with self.binding.transaction(uow) as executor:
            rows = await executor.fetch_mappings(stmt)
        return self.load(rows[0]) if rows else None

    async def get(self, saga_id: str, *, uow: SQLAlchemyUnitOfWork | None = None) -> S | None:
        """The saga with ``saga_id``, or ``None``."""
        return await self._one(self.table.c.saga_id == str(saga_id), uow)

    async def find_by_correlation_id(
        self,
        correlation_id: str,
        saga_type: str | None = None,
        *,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> S | None:
        """The saga of this repository's type (or ``saga_type``) with ``correlation_id``."""
        if saga_type is not None and saga_type != self.saga_type:
            return None
        return await self._one(self.table.c.correlation_id == str(correlation_id), uow)

    async def _many(
        self, where: Sequence[Any], limit: int, uow: SQLAlchemyUnitOfWork | None
    ) -> list[S]:
        t = self.table
        stmt = (
            select(t.c.state, t.c.version)
            .where(t.c.saga_type == self.saga_type, *where)
            .order_by(t.c.id)
            .limit(limit)
        )
        async with self.binding.transaction(uow) as executor:
            rows = await executor.fetch_mappings(stmt)
        return [self.load(r) for r in rows]

    async def find_stalled(
        self,
        *,
        now: datetime | None = None,
        limit: int = 100,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[S]:
        """Active sagas (RUNNING / COMPENSATING, not waiting) not saved for ``stall_after``."""
        t = self.table
        now = now or utc_now()
        return await self._many(
            [
                t.c.status == PENDING,
                t.c.saga_status.in_([SagaStatus.RUNNING.value, SagaStatus.COMPENSATING.value]),
                t.c.waiting_for.is_(None),
                t.c.available_at <= now,
            ],
            limit,
            uow,
        )

    async def find_suspended(
        self, *, limit: int = 100, uow: SQLAlchemyUnitOfWork | None = None
    ) -> list[S]:
        """Sagas waiting for an event."""
        t = self.table
        return await self._many(
            [t.c.saga_status == SagaStatus.RUNNING.value, t.c.waiting_for.is_not(None)],
            limit,
            uow,
        )

    async def find_timed_out(
        self,
        *,
        now: datetime | None = None,
        limit: int = 100,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[S]:
        """Sagas whose event wait expired (``timeout_at <= now``)."""
        t = self.table
        now = now or utc_now()
        return await self._many(
            [
                t.c.saga_status == SagaStatus.RUNNING.value,
                t.c.waiting_for.is_not(None),
                t.c.timeout_at <= now,
            ],
            limit,
            uow,
        )

    async def count_by_status(
        self, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> dict[SagaStatus, int]:
        """Number of sagas of this type per status."""
        t = self.table
        stmt = (
            select(t.c.saga_status, func.count())
            .where(t.c.saga_type == self.saga_type)
            .group_by(t.c.saga_status)
        )
        async with self.binding.transaction(uow) as executor:
            rows = await executor.fetch(stmt)
        return {SagaStatus(r[0]): int(r[1]) for r in rows}
