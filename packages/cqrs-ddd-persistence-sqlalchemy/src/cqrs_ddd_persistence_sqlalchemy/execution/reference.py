"""The reference execution: SQLAlchemy's public API only, correct with any async driver.

Statements run through ``AsyncConnection.execute`` (SQLAlchemy's compiled cache, its type
processing, its driver adaptation). A single statement outside a unit of work runs in
autocommit when the dialect allows it (PostgreSQL: no ``BEGIN``/``COMMIT`` round trips) and in a
short transaction otherwise (SQLite, where the library's engine begins every transaction with
``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, NoReturn, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_persistence_sqlalchemy.errors import translate, translating
from cqrs_ddd_persistence_sqlalchemy.execution.pinning import (
    HeldPin,
    pinned_executor,
    reset_pinned,
    set_pinned,
    unpinned,
)
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import (
    Executor,
    Params,
    UnitTransaction,
)

__all__ = [
    "ConnectionExecutor",
    "ConnectionTransaction",
    "ReferenceExecution",
    "raise_translated",
]


def raise_translated(exc: Exception) -> NoReturn:
    """Raise the library error for ``exc`` (from it), or ``exc`` itself if it is none."""
    if isinstance(exc, CQRSDDDError):
        raise exc
    error = translate(exc)
    if error is None:
        raise exc
    raise error from exc


class ConnectionExecutor:
    """An :class:`~.protocol.Executor` on a SQLAlchemy ``AsyncConnection``."""

    __slots__ = ("connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    @property
    def dialect(self) -> Dialect:
        return self.connection.dialect

    @property
    def lost(self) -> bool:
        """Whether the connection was closed or invalidated (a failure left its state
        unknown). A held connection is not used again then: SQLAlchemy would reconnect it on
        its next statement without the isolation level set on it (autocommit), and every
        later statement would run in a transaction nobody commits."""
        sync = self.connection.sync_connection
        return sync is None or sync.invalidated

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        try:
            return (await self.connection.execute(statement, params)).all()
        except Exception as exc:
            raise_translated(exc)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        try:
            rows = (await self.connection.execute(statement, params)).mappings().all()
            return cast(Sequence[Mapping[str, Any]], rows)
        except Exception as exc:
            raise_translated(exc)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        try:
            result = await self.connection.execute(statement, params)
        except Exception as exc:
            raise_translated(exc)
        rowcount: int = getattr(result, "rowcount", -1)
        return rowcount


class _TransactionPerStatement(ConnectionExecutor):
    """A held connection on a dialect without autocommit: each statement in its own
    transaction."""

    __slots__ = ()

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        with translating():
            async with self.connection.begin():
                return await super().fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        with translating():
            async with self.connection.begin():
                return await super().fetch_mappings(statement, params)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        with translating():
            async with self.connection.begin():
                return await super().execute(statement, params)


class ConnectionTransaction:
    """A :class:`~.protocol.UnitTransaction` on a SQLAlchemy ``AsyncConnection``."""

    __slots__ = ("_conn", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def connection(self) -> AsyncConnection:
        conn = self._conn
        if conn is None:
            with translating():
                conn = self._conn = await self._engine.connect()
        if not conn.in_transaction():
            with translating():
                await conn.begin()
        return conn

    async def executor(self) -> Executor:
        return ConnectionExecutor(await self.connection())

    def bound_connection(self) -> AsyncConnection | None:
        return self._conn

    async def commit(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.commit()

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.invalidate()
            await conn.close()


class ReferenceExecution:
    """An :class:`~.protocol.Execution` on SQLAlchemy's public API.

    Args:
        engine: the engine whose pool the operations use.
        autocommit: whether a single statement may run without a transaction (the dialect
            says: ``dialects.dialect_for(engine).autocommit_statements``).
    """

    def __init__(self, engine: AsyncEngine, *, autocommit: bool) -> None:
        self._engine = engine
        self.autocommit = autocommit

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    # -- single statements -------------------------------------------------------------------
    @asynccontextmanager
    async def single(self) -> AsyncIterator[Executor]:
        """The executor of one statement atomic on its own: the task's pin, or a pooled
        connection in autocommit (a short transaction where the dialect has none)."""
        held = pinned_executor(self)
        if held is not None:
            yield held
            return
        with translating():
            if self.autocommit:
                async with self._engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield ConnectionExecutor(conn)
            else:
                async with self._engine.begin() as conn:
                    yield ConnectionExecutor(conn)

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        async with self.single() as executor:
            return await executor.fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        async with self.single() as executor:
            return await executor.fetch_mappings(statement, params)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        async with self.single() as executor:
            return await executor.execute(statement, params)

    # -- transactions and held connections ---------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        with translating():
            async with self._engine.begin() as conn:
                yield ConnectionExecutor(conn)

    def open_transaction(self) -> UnitTransaction:
        return ConnectionTransaction(self._engine)

    def in_transaction(self, conn: AsyncConnection) -> Executor:
        """The executor of ``conn`` inside a transaction SQLAlchemy began on it (a unit of
        work's)."""
        return ConnectionExecutor(conn)

    def held_executor(self, conn: AsyncConnection) -> Executor:
        """The executor of a held connection (already in autocommit when the dialect has it)."""
        if self.autocommit:
            return ConnectionExecutor(conn)
        return _TransactionPerStatement(conn)

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[HeldPin]:
        with translating():
            async with self._engine.connect() as conn:
                if self.autocommit:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                pin = HeldPin(self, self.held_executor(conn))
                token = set_pinned(pin.value)
                try:
                    yield pin
                finally:
                    reset_pinned(token)
                    await pin.close()

    def unpinned(self) -> AbstractContextManager[None]:
        return unpinned()
