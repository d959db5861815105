"""The transaction of one unit of work: a connection first, an ORM session only on demand.

The library's stores run their statements on the unit of work's transaction through the
execution seam (:meth:`UowTransaction.executor`): an :class:`~...execution.protocol.UnitTransaction`
of the engine's execution — on asyncpg driven on the driver directly, on a connection lent
again to the next unit of work (see ``execution/asyncpg/transaction.py``). ``uow.session`` is an
``AsyncSession`` made at its first use (:mod:`.lazy_session`) and bound to that same
transaction, so a unit of work that only appends events and saves outbox messages pays for no
session at all, while one that mixes the caller's own ORM work with the stores still runs
everything in one transaction, committed or rolled back together.

With a session factory the engine cannot be read from (a plain callable) or a session given to
the unit of work, the session comes first and its connection is the one the stores use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import (
    Execution,
    Executor,
    UnitTransaction,
)
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.uow.deferred import DeferredWrite, DeferredWrites, W
from cqrs_ddd_persistence_sqlalchemy.uow.failures import ending_quietly
from cqrs_ddd_persistence_sqlalchemy.uow.lazy_session import is_materialized, lazy_session

__all__ = ["UowTransaction"]

SessionFactory = Callable[..., AsyncSession]


class UowTransaction:
    """One entered unit of work's session and transaction."""

    __slots__ = ("_borrowed", "_deferred", "_execution", "_factory", "_handle", "_session")

    def __init__(self, factory: SessionFactory | None, borrowed: AsyncSession | None) -> None:
        self._factory = factory
        self._borrowed = borrowed
        self._session: AsyncSession | None = borrowed
        self._handle: UnitTransaction | None = None
        self._deferred = DeferredWrites()
        engine = factory.kw.get("bind") if isinstance(factory, async_sessionmaker) else None
        # Transaction first only where the session can later be bound to its connection.
        self._execution: Execution | None = (
            execution_for(engine) if isinstance(engine, AsyncEngine) and borrowed is None else None
        )

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect of the transaction's database (no session created)."""
        if self._execution is not None:
            return self._execution.dialect
        return self.session.get_bind().dialect

    @property
    def engine(self) -> AsyncEngine | None:
        """The engine the transaction runs on, when it is known."""
        if self._execution is not None:
            return self._execution.engine
        session = self._session
        bind = session.bind if session is not None else None
        return bind if isinstance(bind, AsyncEngine) else None

    @property
    def session(self) -> AsyncSession:
        """The ORM session: joined to the transaction when it is used."""
        session = self._session
        if session is None:
            factory = self._factory
            assert factory is not None
            if self._execution is not None and isinstance(factory, async_sessionmaker):
                session = lazy_session(factory, self._bound_connection, made=self._made)
            else:
                session = factory()
                if not isinstance(session, AsyncSession):
                    raise ConfigurationError(
                        f"session_factory returned {type(session).__name__}, expected AsyncSession"
                    )
            self._session = session
            if self._deferred and is_materialized(session):
                self._deferred.watch(session.sync_session)
        return session

    def _made(self, session: AsyncSession) -> None:
        if self._deferred:
            self._deferred.watch(session.sync_session)

    # -- deferred writes (see .deferred) ---------------------------------------------------------
    def defer(self, key: Any, make: Callable[[], W]) -> W:
        """The deferred write of ``key`` (made with ``make()`` the first time)."""
        deferred = self._deferred.setdefault(key, make)
        session = self._session
        if session is not None and is_materialized(session):
            self._deferred.watch(session.sync_session)
        return deferred

    def deferred(self, key: Any) -> DeferredWrite | None:
        return self._deferred.get(key)

    def forget_deferred(self) -> None:
        self._deferred.clear()

    async def write_deferred(self) -> None:
        """Write what is deferred now (before any other statement of the transaction)."""
        if self._deferred:
            await self._deferred.write(await self._executor())

    def _bound_connection(self) -> AsyncConnection | None:
        return self._handle.bound_connection() if self._handle is not None else None

    def owns(self, session: Any) -> bool:
        """Whether ``session`` is this transaction's session."""
        return session is not None and session is self._session

    def _active_session(self) -> AsyncSession | None:
        """The session if it is in use (made, and begun or holding changes)."""
        session = self._session
        if session is None or not is_materialized(session):
            return None
        if session.in_transaction() or session.new or session.deleted or session.dirty:
            return session
        return None

    async def connection(self) -> AsyncConnection:
        """A SQLAlchemy connection in the transaction (the session's, or the handle's)."""
        if self._execution is None:
            return await self.session.connection()
        session = self._session
        if (
            session is not None
            and is_materialized(session)
            and (self._handle is None or session.in_transaction())
        ):
            # Made and bound (to the engine) before anything ran: it leads.
            if not session.in_transaction() and self._handle is None:
                return await self._bind_session(session)
            return await session.connection()
        return await self._transaction().connection()

    async def _bind_session(self, session: AsyncSession) -> AsyncConnection:
        # A session made before anything ran, not used yet: bind it to the transaction's
        # connection before its first statement, so that it joins this transaction rather
        # than opening a connection of its own.
        conn = await self._transaction().connection()
        session.bind = conn
        session.sync_session.bind = conn.sync_connection
        return conn

    def _transaction(self) -> UnitTransaction:
        handle = self._handle
        if handle is None:
            assert self._execution is not None
            handle = self._handle = self._execution.open_transaction()
        return handle

    async def executor(self, *, keep: Any = None) -> Executor:
        """The execution seam's executor of the transaction (the fast path where it applies),
        what is deferred written first (but the write under ``keep``)."""
        handle, session = self._handle, self._session
        if handle is not None and (session is None or not is_materialized(session)):
            # The usual statement of a store-only unit of work (its transaction begun, no
            # session in use that could lead it), without ``_executor``'s checks.
            executor = await handle.executor()
        else:
            executor = await self._executor()
        if self._deferred:
            await self._deferred.write(executor, keep=keep)
        return executor

    async def _executor(self) -> Executor:
        if self._execution is None:
            from cqrs_ddd_persistence_sqlalchemy.execution.resolve import executor_for

            return executor_for(await self.session.connection())
        session = self._session
        if session is not None and is_materialized(session) and self._handle is None:
            return self._execution.in_transaction(await self.connection())
        if session is not None and is_materialized(session) and session.in_transaction():
            return self._execution.in_transaction(await session.connection())
        return await self._transaction().executor()

    async def flush(self) -> None:
        await self.write_deferred()
        session = self._active_session()
        if session is not None:
            await session.flush()

    async def commit(self) -> None:
        """Flush and commit (the session's work and the stores' statements together)."""
        await self.write_deferred()
        session = self._active_session()
        if session is not None:
            # Joined to the transaction's connection, this flushes and ends the session's own
            # transaction; the transaction's commit below is the one that counts.
            await session.commit()
        if self._handle is not None:
            await self._handle.commit()

    async def rollback(self) -> None:
        """Roll back; a connection that cannot (it was lost) is discarded, nothing raised."""
        self._deferred.clear()
        session = self._active_session()
        if session is not None:
            await ending_quietly("rollback", session.rollback, session.invalidate)
        if self._handle is not None:
            await ending_quietly("rollback", self._handle.rollback, self._handle.discard)

    async def close(self) -> None:
        """Give the connection back (a borrowed session is left to its owner)."""
        session, handle = self._active_session(), self._handle
        self._session = self._handle = None
        self._deferred.clear()
        self._deferred.unwatch()
        if session is not None and session is not self._borrowed:
            await ending_quietly("closing a session", session.close, session.invalidate)
        if handle is not None:
            await ending_quietly("closing a connection", handle.close, handle.discard)
