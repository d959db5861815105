"""Resolving the :class:`~.protocol.Execution` of an engine (once, then cached).

The asyncpg fast path (:mod:`.asyncpg`) where it applies and is not switched off, the
reference path (:mod:`.reference`) everywhere else.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution, Executor
from cqrs_ddd_persistence_sqlalchemy.execution.reference import (
    ConnectionExecutor,
    ReferenceExecution,
)

__all__ = ["execution_for", "executor_for", "set_fast_path"]

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
    if engine.dialect.driver == "asyncpg" and not _FAST_PATH_OFF.get(engine.sync_engine):
        from cqrs_ddd_persistence_sqlalchemy.execution import asyncpg as fast

        if fast.fast_path_supported():
            return fast.AsyncpgExecution(engine, autocommit=autocommit)
    return ReferenceExecution(engine, autocommit=autocommit)


def executor_for(connection: AsyncConnection) -> Executor:
    """An :class:`Executor` on a connection the caller holds, in its current transaction."""
    return ConnectionExecutor(connection)
