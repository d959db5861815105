"""Run a statement built with SQLAlchemy straight on asyncpg's connection (hot paths only).

SQLAlchemy's asyncpg execution path — execution context, greenlet hops, DBAPI cursor
adaptation, result construction — costs about 100-200 µs of client CPU per statement, as much
as a whole raw-asyncpg transaction. For the few statements that run thousands of times a
second (event appends and stream reads outside a unit of work, queue claims and fenced
settles) the statement is compiled once for the engine's dialect and its SQL sent with
``asyncpg.Connection.fetch``. The SQL still comes from ``Table`` objects.

The values asyncpg receives are the ones SQLAlchemy would have sent: every parameter goes
through its type's own bind processor (``UTCDateTime``'s zone check, ``JSONType``'s codec),
taken from the engine's dialect. A statement qualifies only when no parameter is rendered per
execution (expanding ``IN``: use ``= ANY(array)``) and no result column needs SQLAlchemy-side
conversion; anything else goes through SQLAlchemy.

The pooled connection is checked out through SQLAlchemy as usual (checkout guard, reset on
return, invalidation) and must not be inside a transaction SQLAlchemy started: the statement
commits on its own. Errors are asyncpg's own exceptions, which
``cqrs_ddd_persistence_sqlalchemy.errors.translate`` maps by SQLSTATE like SQLAlchemy's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.util.concurrency import await_, greenlet_spawn

__all__ = ["DriverStatement", "DriverStatements", "driver_statements"]

_Processor = Callable[[Any], Any] | None


def _needs_result_processing(type_: Any, dialect: Dialect) -> bool:
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, sqltypes.Float):
        return bool(impl.asdecimal)  # float8 comes back as float
    if isinstance(impl, sqltypes.Numeric):
        return not impl.asdecimal  # numeric comes back as Decimal
    try:
        return impl.result_processor(dialect, None) is not None
    except Exception:  # a processor that needs the column's type code: let SQLAlchemy do it
        return True


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement compiled once for asyncpg: SQL, parameter order, their bind processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[_Processor, ...]
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
            if _needs_result_processing(col.type, dialect):
                return None  # SQLAlchemy would convert this result column
        names = tuple(compiled.positiontup or ())
        defaults: dict[str, Any] = {}
        processors: list[_Processor] = []
        for name in names:
            bind = compiled.binds[name]
            if not bind.required:
                defaults[name] = bind.effective_value
            processors.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        return cls(compiled.string, names, tuple(processors), defaults)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional arguments from named ones, as SQLAlchemy would have processed them."""
        out: list[Any] = []
        defaults = self.defaults
        for name, process in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params else defaults[name]
            out.append(value if process is None or value is None else process(value))
        return out

    async def fetch(self, bare: AsyncConnection, params: Mapping[str, Any]) -> list[Any]:
        """Run on the driver connection behind ``bare`` (autocommit: no transaction open)."""
        sync = bare.sync_connection
        assert sync is not None, "the connection is not started"
        driver: Any = sync.connection.driver_connection
        args = self.args(params)
        try:
            records: list[Any] = await driver.fetch(self.sql, *args)
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight):
                # the connection's state is unknown, never hand it out again.
                with contextlib.suppress(Exception):
                    await bare.invalidate()
            raise
        return records


class DriverStatements:
    """Driver forms of statements the caller keeps alive, by identity and dialect."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str, str], tuple[ClauseElement, DriverStatement | None]] = {}

    def compiled(self, stmt: ClauseElement, dialect: Dialect) -> DriverStatement | None:
        """The driver form of ``stmt`` for ``dialect`` (``None``: use SQLAlchemy).

        Only for statements kept alive by the caller (module constants, per-store statements):
        the cache holds them and is keyed by identity.
        """
        key = (id(stmt), dialect.name, dialect.driver)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not stmt:
            hit = self._cache[key] = (stmt, DriverStatement.compile(stmt, dialect))
        return hit[1]

    async def fetch(
        self, bare: AsyncConnection, stmt: ClauseElement, params: Mapping[str, Any]
    ) -> list[Any] | None:
        """Rows of ``stmt`` run on the driver connection behind ``bare`` (a connection the
        caller holds), or ``None`` when it must go through SQLAlchemy."""
        call = self.compiled(stmt, bare.dialect)
        if call is None:
            return None
        sync = bare.sync_connection
        if sync is None or sync.invalidated:
            # A connection invalidated by an earlier failure would reconnect on access, which
            # needs SQLAlchemy's greenlet: its own path reconnects or raises (translated).
            return None
        options = sync.get_execution_options()
        if options.get("schema_translate_map"):
            return None  # applied by SQLAlchemy at execution time
        if sync.in_transaction() and options.get("isolation_level") != "AUTOCOMMIT":
            return None  # SQLAlchemy began a transaction on this connection: stay in it
        return await call.fetch(bare, params)

    async def fetch_pooled(
        self, engine: AsyncEngine, stmt: ClauseElement, params: Mapping[str, Any]
    ) -> list[Any] | None:
        """Rows of ``stmt`` run on a connection checked out of ``engine``'s pool for this one
        statement, or ``None`` when it must go through SQLAlchemy.

        Checkout, execution and checkin happen in one greenlet hop on the pool's own
        connection (its checkout events — the library's guard — run as usual); an
        ``AsyncConnection`` around it would cost two hops and a ``Connection`` object,
        about half the client CPU of the statement itself.
        """
        call = self.compiled(stmt, engine.dialect)
        if call is None or engine.get_execution_options().get("schema_translate_map"):
            return None
        args = call.args(params)
        records: list[Any] = await greenlet_spawn(
            _fetch_checked_out, engine.sync_engine, call.sql, args
        )
        return records


def _fetch_checked_out(engine: Engine, sql: str, args: list[Any]) -> list[Any]:
    raw = engine.raw_connection()  # a pooled connection, reset on return: no transaction open
    try:
        driver: Any = raw.driver_connection
        try:
            records: list[Any] = await_(driver.fetch(sql, *args))
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight):
                # the connection's state is unknown, never hand it out again.
                with contextlib.suppress(Exception):
                    raw.invalidate()
            raise
        return records
    finally:
        raw.close()


#: The process-wide cache for module-level statements (a handful of dialects).
driver_statements = DriverStatements()
