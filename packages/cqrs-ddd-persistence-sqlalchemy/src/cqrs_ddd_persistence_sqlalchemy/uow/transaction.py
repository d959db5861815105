"""The transaction of one unit of work: a connection first, an ORM session only on demand.

The library's stores run their statements on the unit of work's connection through the
execution seam (:meth:`UowTransaction.executor`); an ``AsyncSession`` is created only when the
caller — or an ORM-based store (repository, sagas, projections) — asks for ``uow.session``, and
then it is bound to that same connection and joins its transaction. So a unit of work that only
appends events and saves outbox messages pays for one pooled connection and its transaction,
not for a session, while one that mixes the caller's own ORM work with the stores still runs
everything in one transaction, committed or rolled back together.

With a session factory the engine cannot be read from (a plain callable) or a session given
to the unit of work, the session comes first and its connection is the one the stores use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution, Executor
from cqrs_ddd_persistence_sqlalchemy.execution.reference import ConnectionExecutor
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.uow.failures import ending_quietly

__all__ = ["UowTransaction"]

SessionFactory = Callable[..., AsyncSession]


class UowTransaction:
    """One entered unit of work's connection, session and transaction."""

    __slots__ = ("_borrowed", "_conn", "_execution", "_factory", "_session")

    def __init__(self, factory: SessionFactory | None, borrowed: AsyncSession | None) -> None:
        self._factory = factory
        self._borrowed = borrowed
        self._session: AsyncSession | None = borrowed
        self._conn: AsyncConnection | None = None
        engine = factory.kw.get("bind") if isinstance(factory, async_sessionmaker) else None
        # Connection first only where the session can later be bound to that connection.
        self._execution: Execution | None = (
            execution_for(engine) if isinstance(engine, AsyncEngine) else None
        )

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect of the transaction's database (no session created)."""
        if self._execution is not None:
            return self._execution.dialect
        return self.session.get_bind().dialect

    @property
    def session(self) -> AsyncSession:
        """The ORM session, created on first use (joined to the connection if there is one)."""
        session = self._session
        if session is None:
            assert self._factory is not None
            made = self._factory(bind=self._conn) if self._conn is not None else self._factory()
            if not isinstance(made, AsyncSession):
                raise ConfigurationError(
                    f"session_factory returned {type(made).__name__}, expected AsyncSession"
                )
            session = self._session = made
        return session

    async def connection(self) -> AsyncConnection:
        """The connection of the transaction (begun: a commit ends it, the next use begins
        the next one)."""
        session = self._session
        if self._execution is None:
            return await self.session.connection()
        if session is not None and (
            self._conn is not None or session is self._borrowed or session.in_transaction()
        ):
            return await session.connection()
        conn = self._conn
        if conn is None:
            conn = self._conn = await self._execution.engine.connect()
        if not conn.in_transaction():
            await conn.begin()
        if session is not None:
            # Made (``uow.session``) before anything ran: bind it to this connection before
            # its first statement, so that it joins this transaction rather than opening a
            # connection of its own.
            session.bind = conn
            session.sync_session.bind = conn.sync_connection
        return conn

    async def executor(self) -> Executor:
        """The execution seam's executor of the transaction (the fast path where it applies)."""
        conn = await self.connection()
        if self._execution is not None:
            return self._execution.in_transaction(conn)
        return ConnectionExecutor(conn)

    async def flush(self) -> None:
        if self._session is not None:
            await self._session.flush()

    def _session_in_use(self) -> AsyncSession | None:
        """The session, if anything was done with it: a session the seed's pattern only made
        (``SQLAlchemyEventStore(uow.session)``) and never used has nothing to flush, commit,
        roll back or close — skipping it saves a round of SQLAlchemy's session
        machinery per unit of work."""
        session = self._session
        if session is None:
            return None
        if session.in_transaction() or session.new or session.deleted or session.dirty:
            return session
        return None

    async def commit(self) -> None:
        """Flush and commit (the session's work and the stores' statements together)."""
        session = self._session_in_use()
        if session is not None:
            # Joined to our connection, this flushes and ends the session's own transaction;
            # the connection's commit below is the one that counts.
            await session.commit()
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.commit()

    async def rollback(self) -> None:
        """Roll back; a connection that cannot (it was lost) is discarded, nothing raised."""
        session, conn = self._session_in_use(), self._conn
        if session is not None:
            await ending_quietly("rollback", session.rollback, session.invalidate)
        if conn is not None and conn.in_transaction():
            await ending_quietly("rollback", conn.rollback, conn.invalidate)

    async def close(self) -> None:
        """Give the connection back (a borrowed session is left to its owner)."""
        session, conn = self._session_in_use(), self._conn
        self._session = self._conn = None
        if session is not None and session is not self._borrowed:
            await ending_quietly("closing a session", session.close, session.invalidate)
        if conn is not None:
            await ending_quietly("closing a connection", conn.close, _invalidate(conn))

    def owns(self, session: Any) -> bool:
        return session is not None and session is self._session


def _invalidate(conn: AsyncConnection) -> Callable[[], Any]:
    async def invalidate() -> None:
        await conn.invalidate()
        await conn.close()

    return invalidate
