"""Resolving the :class:`~.protocol.Execution` of an engine (once, then cached).

The asyncpg fast path (:mod:`.asyncpg`) where it applies and is not switched off, the
reference path (:mod:`.reference`) everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution, Executor
from cqrs_ddd_persistence_sqlalchemy.execution.reference import (
    ConnectionExecutor,
    ReferenceExecution,
)
from cqrs_ddd_persistence_sqlalchemy.pooling import Pooler, pooler_of, set_pooler

__all__ = ["execution_for", "executor_for", "install_pooler", "pool_checks", "set_fast_path"]

# sync engine -> (the AsyncEngine it was resolved for, its execution). ``AsyncEngine`` objects
# are wrappers (``execution_options()`` makes new ones over the same pool); the key is the
# sync engine, and an entry is only reused for the same wrapper.
_EXECUTIONS: WeakKeyDictionary[Engine, tuple[AsyncEngine, Execution]] = WeakKeyDictionary()
_FAST_PATH_OFF: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()


def set_fast_path(engine: AsyncEngine, enabled: bool) -> None:
    """Switch the asyncpg fast path on or off for ``engine`` (``create_engine(...,
    fast_path=False)`` calls this). Off means every statement goes through SQLAlchemy."""
    _FAST_PATH_OFF[engine.sync_engine] = not enabled
    _EXECUTIONS.pop(engine.sync_engine, None)


def execution_for(engine: AsyncEngine) -> Execution:
    """The :class:`Execution` of ``engine`` (resolved once, then cached)."""
    hit = _EXECUTIONS.get(engine.sync_engine)
    if hit is not None and hit[0] is engine:
        return hit[1]
    execution = _resolve(engine)
    _EXECUTIONS[engine.sync_engine] = (engine, execution)
    return execution


def _resolve(engine: AsyncEngine) -> Execution:
    autocommit = dialect_for(engine.dialect).autocommit_statements
    pooler = pooler_of(engine)
    if pooler is not None and pooler.settings:
        # Behind a pooler, settings are applied per transaction (SET LOCAL): a statement in
        # autocommit would run without them, so every statement gets a transaction.
        autocommit = False
    if engine.dialect.driver == "asyncpg" and not _FAST_PATH_OFF.get(engine.sync_engine):
        from cqrs_ddd_persistence_sqlalchemy.execution import asyncpg as fast

        if fast.fast_path_supported():
            return fast.AsyncpgExecution(engine, autocommit=autocommit)
    return ReferenceExecution(engine, autocommit=autocommit)


def executor_for(connection: AsyncConnection) -> Executor:
    """An :class:`Executor` on a connection the caller holds, in its current transaction."""
    return ConnectionExecutor(connection)


def pool_checks(
    url: URL, kwargs: dict[str, Any], *, ping_after: float | None
) -> tuple[dict[str, Any], Callable[[AsyncEngine], None]]:
    """How the pool replaces dead connections, decided by driver before the engine exists.

    asyncpg: the fast path's checkout guard (a closed socket is seen without I/O, a connection
    idle over ``ping_after`` seconds gets one simple-protocol round trip; see
    ``execution/asyncpg/guard.py``) instead of SQLAlchemy's three-round-trip
    ``pool_pre_ping`` — unless ``pool_pre_ping=True`` was asked for (``False``: never ping).
    Other drivers: ``pool_pre_ping`` on by default. Returns the keyword arguments for
    ``create_async_engine`` and what to install on the engine once it exists.
    """
    kwargs = dict(kwargs)
    if url.get_driver_name() == "asyncpg" and not kwargs.get("pool_pre_ping"):
        if kwargs.pop("pool_pre_ping", None) is False:
            ping_after = None
        from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.guard import (
            install_checkout_guard,
        )

        def install(engine: AsyncEngine) -> None:
            install_checkout_guard(engine, ping_after=ping_after)

        return kwargs, install
    if url.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    return kwargs, _nothing


def _nothing(engine: AsyncEngine) -> None:
    return None


def install_pooler(engine: AsyncEngine, pooler: Pooler) -> None:
    """Record ``pooler`` for ``engine`` (``create_engine(pooler=...)``) and send its settings
    statement at the start of every transaction: on asyncpg as one simple-protocol statement
    right after ``BEGIN`` (no prepared statement), on other drivers through the DBAPI cursor
    (psycopg sends ``BEGIN`` before it)."""
    set_pooler(engine, pooler)
    _EXECUTIONS.pop(engine.sync_engine, None)
    sql = pooler.begin_sql
    if sql is None:
        return
    asyncpg = engine.dialect.driver == "asyncpg"

    def _on_begin(conn: Connection) -> None:
        fairy = conn.connection
        dbapi = fairy.dbapi_connection
        if dbapi is None or getattr(dbapi, "autocommit", False):
            return  # no transaction to scope the settings to (the library opens none)
        if asyncpg:
            from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import begin_with

            begin_with(dbapi, fairy.driver_connection, sql)
            return
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "begin", _on_begin)
