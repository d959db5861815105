"""``AsyncpgExecution``: the reference execution, with qualifying statements sent on asyncpg.

Single statements outside a unit of work run on a lent pooled connection (see
:mod:`.lending`) or on the task's pinned connection, in autocommit: one round trip and none of
SQLAlchemy's per-execution work. Everything else — transactions, ``executemany``, statements
that do not qualify (see :mod:`.statements`) — is the reference path's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.executors import (
    DriverConnectionExecutor,
    DriverTransactionExecutor,
    rowcount,
    state_unknown,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.lending import Lender, lender_for
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import (
    DriverStatement,
    driver_form,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.transaction import DriverTransaction
from cqrs_ddd_persistence_sqlalchemy.execution.pinning import pinned_executor
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor, Params, UnitTransaction
from cqrs_ddd_persistence_sqlalchemy.execution.reference import (
    ReferenceExecution,
    raise_translated,
)

__all__ = ["AsyncpgExecution"]


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
        # A unit of work's transaction runs on asyncpg directly only on an engine with no
        # execution options (an isolation level is applied by SQLAlchemy's Connection)...
        self._plain = not engine.get_execution_options()

    def in_transaction(self, conn: AsyncConnection) -> Executor:
        return DriverTransactionExecutor(conn)

    def open_transaction(self) -> UnitTransaction:
        # ... and no transaction listeners, registered now (they would not see a BEGIN or
        # COMMIT sent on the driver; and SQLAlchemy's connection over it is made without I/O).
        dispatch = self._engine.sync_engine.dispatch
        if (
            self._lender is None
            or not self._plain
            or dispatch.begin
            or dispatch.commit
            or dispatch.rollback
        ):
            return super().open_transaction()
        return DriverTransaction(self._engine, self._lender)

    def held_executor(self, conn: AsyncConnection) -> Executor:
        if self._eligible:
            return DriverConnectionExecutor(conn)
        return super().held_executor(conn)

    def _call(self, statement: Executable, params: Params) -> DriverStatement | None:
        """The driver form of a statement run on its own here (``None``: SQLAlchemy runs it,
        also when a pinned connection is in use)."""
        if not self._eligible or pinned_executor(self) is not None:
            return None
        return driver_form(statement, params, self._engine.dialect)

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        call = self._call(statement, params)
        if call is not None:
            return await self._fetch_lent(call, params)  # type: ignore[arg-type, no-any-return]
        return await super().fetch(statement, params)

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        call = self._call(statement, params)
        if call is not None:
            return await self._fetch_lent(call, params)  # type: ignore[arg-type, no-any-return]
        return await super().fetch_mappings(statement, params)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        call = self._call(statement, params)
        if call is not None:
            status = await self._fetch_lent(call, params, status=True)  # type: ignore[arg-type]
            return rowcount(status)
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
            if state_unknown(exc):
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
