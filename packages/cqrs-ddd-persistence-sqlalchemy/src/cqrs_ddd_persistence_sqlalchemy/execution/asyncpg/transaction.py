"""A unit of work's transaction driven on asyncpg directly.

``BEGIN``, the statements and ``COMMIT`` go to asyncpg's connection; the pooled connection is
taken from the engine's lender (:mod:`.lending`) and parked there again at the end, so units of
work run back to back reuse one connection without a pool checkout each — as a hand-written
service holding its connection would. SQLAlchemy's own connection object is built over the same
pooled connection only when something needs it (an ORM session, a statement that does not
qualify for the driver): then SQLAlchemy commits or rolls back, and closing it gives the
pooled connection back to the pool.

The transaction is SQLAlchemy's asyncpg adapter's own (``compat.start_transaction``), so a
``Connection`` made afterwards sees it as begun and joins it instead of beginning another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from cqrs_ddd_core.errors import ConnectionLostError
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import (
    end_transaction,
    start_transaction,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.executors import (
    DriverTransactionExecutor,
    rowcount,
    state_unknown,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.lending import Held, Lender
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import (
    driver_form,
    driver_many,
)
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor, Params
from cqrs_ddd_persistence_sqlalchemy.execution.reference import (
    ConnectionExecutor,
    raise_translated,
)

__all__ = ["DriverTransaction"]


class DriverTransaction:
    """A :class:`~..protocol.UnitTransaction` on a lent asyncpg connection."""

    __slots__ = ("_conn", "_ended", "_engine", "_executor", "_held", "_lender", "_lost")

    def __init__(self, engine: AsyncEngine, lender: Lender) -> None:
        self._engine = engine
        self._lender = lender
        self._held: Held | None = None
        self._conn: AsyncConnection | None = None  # SQLAlchemy's, once needed
        self._executor: _DriverInTransaction | None = None  # of ``_held``, its transaction begun
        # Committed or rolled back on the driver, ``_held`` kept: the next statement begins anew.
        self._ended = False
        self._lost = False

    def _check_alive(self) -> None:
        if self._lost:
            # Never carry on in a fresh transaction on another connection: the statements
            # that ran before the loss are gone, and committing the rest would persist half
            # of the unit of work.
            raise ConnectionLostError(
                "the unit of work's connection was lost; its transaction is gone — roll back "
                "and run the unit of work again"
            )

    async def _begun(self) -> Held:
        """The lent connection, its transaction begun."""
        self._check_alive()
        held = self._held
        if held is not None:
            if self._ended:
                # A statement after commit() or rollback(): the unit of work stays usable, in a
                # new transaction (without this BEGIN it would run in autocommit, and a later
                # rollback could not undo it).
                try:
                    await start_transaction(held.fairy.dbapi_connection)
                except BaseException as exc:
                    await self._failed(exc)
                    raise
                self._ended = False
            return held
        lent = self._lender.take()
        for attempt in (1, 2):
            try:
                held = lent or await self._lender.checkout(self._engine.sync_engine)
            except Exception as exc:
                raise_translated(exc)
            lent = None
            try:
                await start_transaction(held.fairy.dbapi_connection)
            except BaseException as exc:
                if attempt == 1 and isinstance(exc, Exception) and state_unknown(exc):
                    # Nothing ran on it yet: a connection the server dropped while it was
                    # idle (a restart, a pooler's idle timeout) is replaced, once, by a fresh
                    # checkout — the pool's pre-ping applies to that one.
                    self._lender.discard(held)
                    continue
                self._held = held
                await self._failed(exc)
                raise
            self._held = held
            return held
        raise AssertionError("unreachable")  # pragma: no cover

    async def _failed(self, exc: BaseException) -> None:
        if state_unknown(exc):
            # Not an error the server reported (lost connection, cancellation mid-flight):
            # the connection's state is unknown, never lend it again; and the transaction is
            # gone with it (see _check_alive).
            self._lost = self._lost or self._held is not None or self._conn is not None
            await self.discard()
        if isinstance(exc, Exception):
            raise_translated(exc)

    async def executor(self) -> Executor:
        if self._lost:
            self._check_alive()  # raises
        if self._conn is not None:
            if not self._conn.in_transaction():
                await self._conn.begin()
            return DriverTransactionExecutor(self._conn)
        executor = self._executor
        if executor is None:
            executor = self._executor = _DriverInTransaction(self, await self._begun())
        return executor

    async def connection(self) -> AsyncConnection:
        self._check_alive()
        if self._conn is None:
            await self._begun()
        conn = self.bound_connection()
        assert conn is not None
        if not conn.in_transaction():
            await conn.begin()
        return conn

    def bound_connection(self) -> AsyncConnection | None:
        if self._conn is None and self._held is not None:
            sync = Connection(self._engine.sync_engine, connection=self._held.fairy)
            # No I/O: asyncpg's dialect begins lazily, and the adapter's transaction has begun
            # already — or, after a commit on the driver, begins at SQLAlchemy's first statement
            # (a lent transaction is only used on engines without begin listeners).
            sync.begin()
            self._conn = AsyncConnection(self._engine, sync)
        return self._conn

    async def commit(self) -> None:
        await self._end(commit=True)

    async def rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        if self._lost:
            if commit:
                self._check_alive()  # raises: a commit after a loss would commit nothing
            return  # the server rolled back the transaction when the connection went
        conn = self._conn
        if conn is not None:
            if conn.in_transaction():
                await (conn.commit() if commit else conn.rollback())
            return
        held = self._held
        if held is None or self._ended:
            return  # nothing begun, or nothing since the last commit (the exit after one)
        self._ended = True
        self._executor = None  # the next one begins a new transaction first (``_begun``)
        try:
            await end_transaction(held.fairy.dbapi_connection, commit=commit)
        except BaseException as exc:
            await self._failed(exc)
            raise

    async def close(self) -> None:
        conn, held = self._conn, self._held
        self._conn = self._held = self._executor = None
        if conn is not None:
            await conn.close()  # SQLAlchemy's connection gives the pooled one back
        elif held is not None:
            self._lender.park(held)

    async def discard(self) -> None:
        conn, held = self._conn, self._held
        self._conn = self._held = self._executor = None
        if conn is not None:
            await conn.invalidate()
            await conn.close()
        elif held is not None:
            self._lender.discard(held)


class _DriverInTransaction:
    """Statements of a :class:`DriverTransaction` before SQLAlchemy's connection exists:
    qualifying ones on asyncpg, the others on SQLAlchemy's connection (made for them)."""

    __slots__ = ("_held", "_owner", "dialect")

    def __init__(self, owner: DriverTransaction, held: Held) -> None:
        self._owner = owner
        self._held = held
        # Read on every statement: the engine's ``dialect`` is a proxy of the sync engine's.
        self.dialect: Dialect = owner._engine.sync_engine.dialect

    async def _driver(self, statement: Executable, params: Params, *, status: bool) -> Any:
        call = driver_form(statement, params, self.dialect)
        if call is None or self._owner._conn is not None:
            return None
        try:
            args = call.args(params)  # type: ignore[arg-type]
            driver = self._held.driver
            if status:
                return await driver.execute(call.sql, *args)
            return await driver.fetch(call.sql, *args)
        except BaseException as exc:
            await self._owner._failed(exc)
            raise

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        records = await self._driver(statement, params, status=False)
        if records is not None:
            return records  # type: ignore[no-any-return]
        return await ConnectionExecutor(await self._owner.connection()).fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        records = await self._driver(statement, params, status=False)
        if records is not None:
            return records  # type: ignore[no-any-return]
        executor = ConnectionExecutor(await self._owner.connection())
        return await executor.fetch_mappings(statement, params)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        many = driver_many(statement, params, self.dialect)
        if many is not None and self._owner._conn is None:
            # A kept statement over many parameter sets (the outbox's rows): one
            # ``executemany`` on the driver, pipelined, no row count (as the protocol allows).
            sets = cast(Sequence[Mapping[str, Any]], params)
            try:
                await self._held.driver.executemany(many.sql, [many.args(p) for p in sets])
            except BaseException as exc:
                await self._owner._failed(exc)
                raise
            return -1
        status = await self._driver(statement, params, status=True)
        if status is not None:
            return rowcount(status)
        return await ConnectionExecutor(await self._owner.connection()).execute(statement, params)
