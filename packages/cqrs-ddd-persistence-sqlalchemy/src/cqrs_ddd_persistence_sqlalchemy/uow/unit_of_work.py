"""``SQLAlchemyUnitOfWork``: the one transaction model of the library.

The unit of work owns one transaction: a pooled connection the library's stores run their
statements on, and an ``AsyncSession`` joined to it when something asks for ``uow.session``
(see :mod:`.transaction`). It rolls back on exit unless
:meth:`~SQLAlchemyUnitOfWork.commit` was awaited. While it is entered it is the *ambient* unit of
work (a context variable), so every store finds it without ``uow=``. Aggregates saved through it
get their new version only after the commit succeeded, and with ``event_sinks=`` their pending
domain events are written (outbox, event store) in the same transaction, just before commit.

Leaving the block never raises because of the rollback: a connection that cannot roll back
(terminated backend, failover, pooler restart) has lost its transaction already, so it is
discarded and the pool opens a new one. What leaves the block is what the block raised: the
application's exception unchanged, a database exception as the library error chained to it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
)

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import (
    ConfigurationError,
    UnitOfWorkError,
)
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import uow_committed, uow_failed
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span
from cqrs_ddd_persistence_sqlalchemy.replicas.registry import replicas_attached, replicas_of
from cqrs_ddd_persistence_sqlalchemy.uow.deferred import DeferredWrite, W
from cqrs_ddd_persistence_sqlalchemy.uow.failures import (
    describe,
    is_database_failure,
    library_error,
    translating,
)
from cqrs_ddd_persistence_sqlalchemy.uow.tracking import Tracking
from cqrs_ddd_persistence_sqlalchemy.uow.transaction import UowTransaction

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.replicas.routing import ReplicaSet

__all__ = ["EventSink", "SQLAlchemyUnitOfWork", "current_uow"]

logger = logging.getLogger(__name__)

_current: ContextVar[SQLAlchemyUnitOfWork | None] = ContextVar("cqrs_ddd_uow", default=None)

SessionFactory = Callable[[], AsyncSession]


def current_uow() -> SQLAlchemyUnitOfWork | None:
    """The innermost entered unit of work of the current task, if any."""
    return _current.get()


@runtime_checkable
class EventSink(Protocol):
    """Receives the domain events collected by a unit of work, inside its transaction."""

    async def write_events(
        self, events: Sequence[DomainEvent], *, uow: SQLAlchemyUnitOfWork
    ) -> None: ...


class SQLAlchemyUnitOfWork(Tracking):
    """Transaction manager; rolls back unless committed.

    Accepts an ``AsyncSession`` (borrowed: used but not closed), an ``async_sessionmaker``, any
    callable returning a session, or an ``AsyncEngine`` (sessions with ``expire_on_commit=False``),
    positionally or by keyword::

        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await order_repo.add(order, uow=uow)
            await uow.commit()

        uow = SQLAlchemyUnitOfWork(session_factory=session_factory,
                                   event_sinks=[SQLAlchemyOutboxStorage()])

    After ``commit()`` the unit of work stays usable: the next statement begins a new
    transaction. A caught ``OptimisticConcurrencyError`` leaves the transaction usable too.
    """

    def __init__(
        self,
        session: AsyncSession | SessionFactory | AsyncEngine | None = None,
        session_factory: SessionFactory | AsyncEngine | None = None,
        *,
        event_sinks: Sequence[EventSink] = (),
    ) -> None:
        if isinstance(session, AsyncEngine):
            session = async_sessionmaker(session, expire_on_commit=False)
        if isinstance(session_factory, AsyncEngine):
            session_factory = async_sessionmaker(session_factory, expire_on_commit=False)
        if session is not None and not isinstance(session, AsyncSession):
            if session_factory is not None:
                raise ConfigurationError("pass either a session or a session factory, not two")
            session, session_factory = None, session
        if session is None and session_factory is None:
            raise ConfigurationError("SQLAlchemyUnitOfWork needs a session or a session_factory")
        if session_factory is not None and not callable(session_factory):
            raise ConfigurationError(
                f"session_factory must be callable, got {type(session_factory).__name__}"
            )
        self._borrowed = session
        self._factory = session_factory
        self._txn: UowTransaction | None = None
        self._tokens: list[Token[SQLAlchemyUnitOfWork | None]] = []
        self._depth = 0
        self.event_sinks: list[EventSink] = list(event_sinks)
        self._reset_tracking()
        self.committed = False
        # The replica set whose read-your-writes position to record when the block ends.
        self._note_commit: ReplicaSet | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._depth == 0:
            self._txn = UowTransaction(self._factory, self._borrowed)
            self.committed = False
        self._depth += 1
        self._tokens.append(_current.set(self))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless committed (never raising for the database, see the module's
        docstring); what the block raised propagates, a database exception translated."""
        self._depth -= 1
        if self._tokens:
            _current.reset(self._tokens.pop())
        if self._depth == 0:
            await self._end(failed=exc is not None)
            replicas, self._note_commit = self._note_commit, None
            if replicas is not None:
                # After the connection went back: reads in this context wait for a replica
                # that replayed the commits (see ``replicas/position.py``).
                await replicas.note_commit()
        if exc is not None:
            error = library_error(exc)
            if self._depth == 0:
                uow_failed(error or exc)  # counted when a conflict or retryable
            if error is not None:
                raise error from exc

    async def _end(self, *, failed: bool) -> None:
        """Roll back and release the session. With the block ``failed``, nothing is raised here:
        the block's exception is the one the caller must see."""
        txn = self._txn
        try:
            try:
                await self.rollback()
            finally:
                if txn is not None:
                    await txn.close()
        except Exception:
            if not failed:
                raise
            logger.exception("ending a failed unit of work failed; the block's error propagates")
        finally:
            self._txn = None

    @property
    def session(self) -> AsyncSession:
        """The ORM session of the current transaction (the unit of work must be entered).

        Created on first use and bound to the unit of work's connection: the caller's own ORM
        work and the library's stores share one transaction."""
        if self._txn is None:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
        return self._txn.session

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect of the unit of work's database (it must be entered)."""
        if self._txn is None:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
        return self._txn.dialect

    @property
    def engine(self) -> AsyncEngine | None:
        """The engine of the current transaction when known without a session (``None``
        for a unit of work given a session, or not entered)."""
        return self._txn.engine if self._txn is not None else None

    @property
    def active(self) -> bool:
        return self._txn is not None

    @property
    def session_factory(self) -> SessionFactory | None:
        """The factory this unit of work opens its sessions with (``None`` when it was given
        a session)."""
        return self._factory

    def owns_session(self, session: Any) -> bool:
        """Whether ``session`` is this (entered) unit of work's :attr:`session`."""
        return self._txn is not None and self._txn.owns(session)

    @property
    def borrowed_session(self) -> AsyncSession | None:
        """The session this unit of work was given (used, never closed), if any."""
        return self._borrowed

    def executor(self, *, keep: Any = None) -> Awaitable[Executor]:
        """The executor of this unit of work's transaction (the execution seam), every write
        held back written first — but the one under ``keep``, when its owner knows that the
        statement it is about to run cannot depend on it. Await it: ``await uow.executor()``.
        """
        # Not a coroutine of its own: the transaction's is awaited directly (every statement
        # of a store passes here).
        if self._txn is None:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
        return self._txn.executor(keep=keep)

    # -- deferred writes (see .deferred) -----------------------------------------------------
    def defer(self, key: Any, make: Callable[[], W]) -> W:
        """The write a store holds back under ``key`` until the transaction's next statement
        or the commit (made with ``make()`` the first time); see :mod:`.deferred`."""
        return self._active_txn().defer(key, make)

    def deferred(self, key: Any) -> DeferredWrite | None:
        """The write held back under ``key``, if any."""
        return self._txn.deferred(key) if self._txn is not None else None

    async def write_deferred(self) -> None:
        """Write what the stores hold back, now (``flush()`` and every statement do it)."""
        await self._active_txn().write_deferred()

    def _active_txn(self) -> UowTransaction:
        if self._txn is None:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
        return self._txn

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[AsyncSessionTransaction]:
        """A SAVEPOINT: an error inside rolls back to it and leaves the transaction usable.

        What the block raised propagates as :meth:`__aexit__` describes (the application's
        exception unchanged, a database one translated), also when rolling back to the savepoint
        fails because the connection was lost: the next statement or the commit reports that.
        """
        raised: BaseException | None = None
        txn = self._active_txn()
        await txn.write_deferred()  # what was held back before it is not the savepoint's
        try:
            async with self.session.begin_nested() as nested:
                try:
                    yield nested
                    await txn.write_deferred()  # inside it, before its release
                except BaseException as exc:
                    raised = exc
                    txn.forget_deferred()  # held back inside it: rolled back with it
                    raise
        except Exception as exc:
            if raised is None or exc is raised or not is_database_failure(exc):
                error = library_error(exc)
                if error is None:
                    raise
                raise error from exc
            # Rolling back to the savepoint failed: the connection is gone, and the block's
            # exception is what the caller must see; it is raised below, outside this handler,
            # so that nothing is chained onto it.
            logger.info("rollback to a savepoint failed (%s)", describe(exc))
        if raised is not None:
            error = library_error(raised)
            if error is not None:
                raise error from raised
            raise raised

    async def flush(self) -> None:
        """Flush ORM changes made on :attr:`session` (a stale version raises
        ``OptimisticConcurrencyError``, constraint violations their library errors)."""
        if self._txn is None:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
        with translating():
            await self._txn.flush()

    # -- commit / rollback -----------------------------------------------------------------
    async def commit(self) -> None:
        """Write collected events, commit, then publish new versions and run after-commit hooks.

        Raises:
            CQRSDDDError: the commit failed and the transaction was rolled back; a database
                failure as its library error. ``ConnectionLostError`` (retryable) means the
                connection broke: the commit may or may not have happened.
        """
        txn = self._txn
        if txn is None:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
        with db_span(txn.engine, "commit"):
            await self._commit(txn)
        uow_committed()

    async def _commit(self, txn: UowTransaction) -> None:
        pulled: list[tuple[AggregateRoot[Any], list[DomainEvent]]] = []
        try:
            with translating():
                await txn.write_deferred()
                for hook in list(self._before_commit):
                    await hook(self)
                if self.event_sinks:
                    pulled = [(agg, agg.pull_domain_events()) for agg in self._seen.values()]
                    events = [e for _, evs in pulled for e in evs]
                    if events:
                        for sink in self.event_sinks:
                            await sink.write_events(events, uow=self)
                await txn.commit()
                if replicas_attached():
                    self._note_commit = replicas_of(txn.engine)
        except BaseException:
            for agg, evs in pulled:  # give the events back: nothing was written
                agg._events[:0] = evs
            try:
                await self.rollback()
            except Exception:  # the commit's error is the one to report
                logger.exception("rollback after a failed commit failed")
            raise
        for agg, version in self._pending_versions.values():
            set_persisted_version(agg, version)
        hooks = self._after_commit
        self._reset_tracking()
        self.committed = True
        for after in hooks:
            try:
                result = after()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("after-commit hook %r failed", after)

    async def rollback(self) -> None:
        """Roll the current transaction back and forget what was tracked in it.

        Raises no database error: a connection that cannot roll back (it was lost) is discarded
        instead, and its transaction ends with it. After-rollback hooks run either way.
        """
        hooks = self._after_rollback
        self._reset_tracking()
        txn = self._txn
        if txn is not None:
            if self.committed:  # the usual exit after a commit: nothing to roll back
                await txn.rollback()
            else:
                with db_span(txn.engine, "rollback"):
                    await txn.rollback()
        for hook in hooks:
            try:
                hook()
            except Exception:
                logger.exception("after-rollback hook %r failed", hook)
