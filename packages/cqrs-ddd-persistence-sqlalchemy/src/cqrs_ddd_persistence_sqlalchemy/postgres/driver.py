"""Run a statement built with SQLAlchemy straight on asyncpg's connection (hot paths only).

SQLAlchemy's asyncpg execution path — execution context, bind processing, greenlet hops,
DBAPI cursor adaptation, result construction — costs about 100-200 µs of client CPU per
statement, as much as the whole raw-asyncpg transaction. For the few statements that run
millions of times (the event append) the statement is compiled once for the engine's dialect
and its SQL sent with ``asyncpg.Connection.fetch``. The SQL still comes from ``Table``
objects; only statements whose parameters need no SQLAlchemy-side conversion qualify, so the
values asyncpg receives are the ones SQLAlchemy would have sent.

The pooled connection is checked out through SQLAlchemy as usual (checkout guard, reset on
return, invalidation); only the execution bypasses it. Errors are asyncpg's own exceptions, which
``cqrs_ddd_persistence_sqlalchemy.errors.translate`` maps by SQLSTATE like SQLAlchemy's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement

__all__ = ["DriverStatement", "DriverStatements", "driver_statements"]


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement compiled once for asyncpg: SQL text and the order of its parameters."""

    sql: str
    names: tuple[str, ...]
    #: Values of the statement's own literal binds (``coalesce(x, 0)``, ``LIMIT 1``...).
    defaults: dict[str, Any]

    @classmethod
    def compile(cls, stmt: ClauseElement, dialect: Dialect) -> DriverStatement | None:
        """The driver form of ``stmt``, or ``None`` when it must go through SQLAlchemy."""
        if dialect.driver != "asyncpg":
            return None
        compiled: Any = stmt.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            return None  # expanding IN and literal binds are rendered per execution
        for col in getattr(stmt, "exported_columns", ()):
            if col.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                return None  # SQLAlchemy would convert this result column
        names = tuple(compiled.positiontup or ())
        defaults: dict[str, Any] = {}
        for name in names:
            bind = compiled.binds[name]
            if not bind.required:
                defaults[name] = bind.effective_value
            impl = bind.type.dialect_impl(dialect)
            # An ARRAY's own processor only turns the value into a list (callers pass lists);
            # what matters is whether its items need converting.
            item = getattr(impl, "item_type", None)
            if item is not None:
                impl = item.dialect_impl(dialect)
            if impl.bind_processor(dialect) is not None:
                return None  # SQLAlchemy would convert this value first
        return cls(compiled.string, names, defaults)

    def args(self, params: dict[str, Any]) -> list[Any]:
        """Positional arguments from named ones (literal binds filled in)."""
        defaults = self.defaults
        return [params[n] if n in params else defaults[n] for n in self.names]

    @staticmethod
    def usable_on(bare: AsyncConnection) -> bool:
        # A schema translate map is applied by SQLAlchemy at execution time.
        sync = bare.sync_connection
        return sync is not None and not sync.get_execution_options().get("schema_translate_map")

    async def fetch(self, bare: AsyncConnection, args: Sequence[Any]) -> list[Any]:
        """Run on the driver connection behind ``bare`` (which must not be in a transaction
        SQLAlchemy started: the statement commits on its own). Arrays must be lists."""
        sync = bare.sync_connection
        assert sync is not None, "the connection is not started"
        driver: Any = sync.connection.driver_connection
        try:
            records: list[Any] = await driver.fetch(self.sql, *args)
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight,
                # protocol state): the connection's state is unknown, never hand it out again.
                with contextlib.suppress(Exception):
                    await bare.invalidate()
            raise
        return records


class DriverStatements:
    """Driver forms of module-level statements, compiled once per dialect."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str, str], tuple[ClauseElement, DriverStatement | None]] = {}

    def get(self, stmt: ClauseElement, bare: AsyncConnection) -> DriverStatement | None:
        """The driver form of ``stmt`` usable on ``bare``, or ``None`` (use SQLAlchemy)."""
        dialect = bare.dialect
        key = (id(stmt), dialect.name, dialect.driver)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not stmt:
            hit = self._cache[key] = (stmt, DriverStatement.compile(stmt, dialect))
        call = hit[1]
        return call if call is not None and call.usable_on(bare) else None

    async def fetch(
        self, bare: AsyncConnection, stmt: ClauseElement, params: dict[str, Any]
    ) -> list[Any] | None:
        """Rows of ``stmt`` run on the driver, or ``None`` when it must go through SQLAlchemy.

        Only for statements kept alive by the caller (module constants): the cache is keyed
        by identity.
        """
        call = self.get(stmt, bare)
        if call is None:
            return None
        return await call.fetch(bare, call.args(params))


#: The process-wide cache (statements are module constants; dialects a handful).
driver_statements = DriverStatements()
