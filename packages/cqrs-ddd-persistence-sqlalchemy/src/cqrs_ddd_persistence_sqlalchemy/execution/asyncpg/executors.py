"""Executors that send qualifying statements to asyncpg directly: on a held autocommit
connection, or inside a transaction SQLAlchemy began (a unit of work's)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.sql.base import Executable

from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import start_transaction
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import (
    DriverStatement,
    driver_form,
    driver_many,
)
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Params
from cqrs_ddd_persistence_sqlalchemy.execution.reference import (
    ConnectionExecutor,
    raise_translated,
)

__all__ = ["DriverConnectionExecutor", "DriverTransactionExecutor", "rowcount", "state_unknown"]


def rowcount(status: str) -> int:
    # asyncpg's command status: "UPDATE 3", "INSERT 0 1", "DELETE 0".
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else -1


def state_unknown(exc: BaseException) -> bool:
    """Whether a connection's state is unknown after ``exc``: neither an error the server
    reported (it carries a SQLSTATE) nor one raised before anything was sent (a parameter
    the driver could not encode, a missing one) — a lost connection, a cancellation."""
    if not isinstance(exc, Exception):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is not None:
        # Reported by the server, but as it ends the session (pg_terminate_backend, a
        # shutdown, a broken link): the connection is gone all the same.
        return sqlstate.startswith("08") or sqlstate in _SESSION_ENDED
    return not isinstance(exc, (ValueError, TypeError, LookupError))


#: SQLSTATEs the server sends as it closes the session: admin / crash shutdown, starting up.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})


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
            await self._failed(exc)
            raise

    async def _failed(self, exc: BaseException) -> None:
        if state_unknown(exc):
            # Not an error the server reported (lost connection, cancellation mid-flight):
            # the connection's state is unknown, never hand it out again.
            with contextlib.suppress(Exception):
                await self.connection.invalidate()
        if isinstance(exc, Exception):
            raise_translated(exc)

    async def _records(self, statement: Executable, params: Params) -> Any:
        """asyncpg's records of ``statement``, or ``None`` when SQLAlchemy must run it."""
        call = driver_form(statement, params, self.dialect)
        return None if call is None else await self._run(call, params)  # type: ignore[arg-type]

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        records = await self._records(statement, params)
        if records is not None:
            return records  # type: ignore[no-any-return]
        return await super().fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        records = await self._records(statement, params)
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

    async def _run(
        self, call: DriverStatement, params: Mapping[str, Any] | None, *, status: bool = False
    ) -> Any:
        sync = self.connection.sync_connection
        if sync is None or sync.invalidated or not sync.in_transaction():
            return None
        adapter: Any = sync.connection.dbapi_connection
        if adapter is None:
            return None
        try:
            await start_transaction(adapter)
            driver = adapter.driver_connection
            if status:
                return await driver.execute(call.sql, *call.args(params))
            return await driver.fetch(call.sql, *call.args(params))
        except BaseException as exc:
            await self._failed(exc)
            raise

    async def execute(self, statement: Executable, params: Params = None) -> int:
        """A kept statement on the driver, its row count from the command status (the
        repository's version-checked ``UPDATE``); anything else through SQLAlchemy."""
        many = driver_many(statement, params, self.dialect)
        if many is not None and await self._run_many(many, params):  # type: ignore[arg-type]
            return -1
        call = driver_form(statement, params, self.dialect)
        status = None if call is None else await self._run(call, params, status=True)  # type: ignore[arg-type]
        if status is not None:
            return rowcount(status)
        return await super().execute(statement, params)

    async def _run_many(self, call: DriverStatement, params: Sequence[Mapping[str, Any]]) -> bool:
        """``executemany`` of a kept statement on the driver; ``False`` when SQLAlchemy must
        run it."""
        sync = self.connection.sync_connection
        if sync is None or sync.invalidated or not sync.in_transaction():
            return False
        adapter: Any = sync.connection.dbapi_connection
        if adapter is None:
            return False
        try:
            await start_transaction(adapter)
            await adapter.driver_connection.executemany(call.sql, [call.args(p) for p in params])
        except BaseException as exc:
            await self._failed(exc)
            raise
        return True
