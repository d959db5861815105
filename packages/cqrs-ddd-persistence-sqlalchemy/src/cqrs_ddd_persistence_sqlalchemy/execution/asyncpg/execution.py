"""``AsyncpgExecution``: the reference execution, with qualifying statements sent on asyncpg.

Single statements outside a unit of work run on a lent pooled connection (see
:mod:`.lending`) or on the task's pinned connection, in autocommit: one round trip and none of
SQLAlchemy's per-execution work. Everything else — transactions, ``executemany``, statements
that do not qualify (see :mod:`.statements`) — is the reference path's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import start_transaction
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.lending import Lender, lender_for
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import (
    DriverStatement,
    compiled_for,
)
from cqrs_ddd_persistence_sqlalchemy.execution.pinning import pinned_executor
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor, Params
from cqrs_ddd_persistence_sqlalchemy.execution.reference import (
    ConnectionExecutor,
    ReferenceExecution,
    raise_translated,
)

__all__ = ["AsyncpgExecution", "DriverConnectionExecutor", "DriverTransactionExecutor"]


def _rowcount(status: str) -> int:
    # asyncpg's command status: "UPDATE 3", "INSERT 0 1", "DELETE 0".
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else -1


class DriverConnectionExecutor(ConnectionExecutor):
    """A held connection in autocommit whose qualifying statements go to asyncpg directly."""

    __slots__ = ()

    def _driver(self) -> Any:
        """asyncpg's connection, if a statement may run on it now (else ``None``)."""
        sync = self.connection.sync_connection
        if sync is None or sync.invalidated:
            # A connection invalidated by an earlier failure reconnects on access, which
            # needs SQLAlchemy's greenlet: its own path reconnects or raises (translated).
            return None
        if sync.in_transaction() and (
            sync.get_execution_options().get("isolation_level") != "AUTOCOMMIT"
        ):
            return None  # SQLAlchemy began a transaction on this connection: stay in it
        return sync.connection.driver_connection

    async def _run(self, call: DriverStatement, params: Mapping[str, Any] | None) -> Any:
        driver = self._driver()
        if driver is None:
            return None
        try:
            return await driver.fetch(call.sql, *call.args(params))
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight):
                # the connection's state is unknown, never hand it out again.
                with contextlib.suppress(Exception):
                    await self.connection.invalidate()
            if isinstance(exc, Exception):
                raise_translated(exc)
            raise

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        call = (
            compiled_for(statement, self.dialect)  # type: ignore[arg-type]
            if params is None or isinstance(params, Mapping)
            else None
        )
        if call is not None:
            records = await self._run(call, params)  # type: ignore[arg-type]
            if records is not None:
                return records  # type: ignore[no-any-return]
        return await super().fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        call = (
            compiled_for(statement, self.dialect)  # type: ignore[arg-type]
            if params is None or isinstance(params, Mapping)
            else None
        )
        if call is not None:
            records = await self._run(call, params)  # type: ignore[arg-type]
            if records is not None:
                return records  # type: ignore[no-any-return]
        return await super().fetch_mappings(statement, params)


class DriverTransactionExecutor(DriverConnectionExecutor):
    """A connection inside a transaction SQLAlchemy began (a unit of work's): qualifying
    statements go to asyncpg directly, in that transaction.

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, at the first statement it runs
    itself; a statement sent here first starts it (``compat.start_transaction``), so the
    driver's statements and SQLAlchemy's (the ORM session joined to this connection) share one
    server transaction, which SQLAlchemy commits or rolls back.
    """

    __slots__ = ()

    async def _run(self, call: DriverStatement, params: Mapping[str, Any] | None) -> Any:
        sync = self.connection.sync_connection
        if sync is None or sync.invalidated or not sync.in_transaction():
            return None
        adapter: Any = sync.connection.dbapi_connection
        if adapter is None:
            return None
        try:
            await start_transaction(adapter)
            return await adapter.driver_connection.fetch(call.sql, *call.args(params))
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight):
                # the connection's state is unknown, never hand it out again.
                with contextlib.suppress(Exception):
                    await self.connection.invalidate()
            if isinstance(exc, Exception):
                raise_translated(exc)
            raise


class AsyncpgExecution(ReferenceExecution):
    """:class:`~..reference.ReferenceExecution` with the asyncpg fast path (see package doc)."""

    def __init__(self, engine: AsyncEngine, *, autocommit: bool) -> None:
        super().__init__(engine, autocommit=autocommit)
        # Execution options of an engine are fixed once it exists (``execution_options()``
        # makes another engine); a schema translate map is applied by SQLAlchemy only.
        self._eligible = autocommit and not engine.get_execution_options().get(
            "schema_translate_map"
        )
        self._lender: Lender | None = lender_for(engine.sync_engine) if self._eligible else None

    def in_transaction(self, conn: AsyncConnection) -> Executor:
        return DriverTransactionExecutor(conn)

    def held_executor(self, conn: AsyncConnection) -> Executor:
        if self._eligible:
            return DriverConnectionExecutor(conn)
        return super().held_executor(conn)

    def _call(self, statement: Executable) -> DriverStatement | None:
        if not self._eligible:
            return None
        return compiled_for(statement, self._engine.dialect)  # type: ignore[arg-type]

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        if pinned_executor(self) is None and (params is None or isinstance(params, Mapping)):
            call = self._call(statement)
            if call is not None:
                return await self._fetch_lent(call, params)  # type: ignore[no-any-return]
        return await super().fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        if pinned_executor(self) is None and (params is None or isinstance(params, Mapping)):
            call = self._call(statement)
            if call is not None:
                return await self._fetch_lent(call, params)  # type: ignore[no-any-return]
        return await super().fetch_mappings(statement, params)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        if pinned_executor(self) is None and (params is None or isinstance(params, Mapping)):
            call = self._call(statement)
            if call is not None:
                status = await self._fetch_lent(call, params, status=True)
                return _rowcount(status)
        return await super().execute(statement, params)

    async def _fetch_lent(
        self, call: DriverStatement, params: Mapping[str, Any] | None, *, status: bool = False
    ) -> Any:
        """Rows (or the command status) of a driver statement on a lent connection."""
        lender = self._lender
        assert lender is not None
        try:
            args = call.args(params)
            held = lender.take()
            if held is None:
                held = await lender.checkout(self._engine.sync_engine)
        except Exception as exc:
            raise_translated(exc)
        try:
            if status:
                result: Any = await held.driver.execute(call.sql, *args)
            else:
                result = await held.driver.fetch(call.sql, *args)
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight):
                # the connection's state is unknown, never lend it again.
                lender.discard(held)
            else:
                lender.park(held)
            if isinstance(exc, Exception):
                raise_translated(exc)
            raise
        lender.park(held)
        return result
