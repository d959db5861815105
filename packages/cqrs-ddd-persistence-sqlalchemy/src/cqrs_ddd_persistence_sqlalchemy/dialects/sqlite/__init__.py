"""SQLite (aiosqlite): serialised writers (``BEGIN IMMEDIATE``), the guarded-UPDATE claim, a
position-ordered event log, ``ON CONFLICT`` DML (and, in ``specs``,
the JSON1 / FTS5 / SpatiaLite specification operators)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, Update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import HorizonHolder, Ordering
from cqrs_ddd_persistence_sqlalchemy.dialects.interface import (
    EventLogSql,
    Listener,
    ReplicationSql,
    UpsertInsert,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite import dml, queue, specs
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite.engine import configure_sqlite_engine
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite.event_log import SerialEventLog
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.pooling import Pooler

__all__ = ["SqliteDialect"]


_SERIAL_LOG = SerialEventLog()


@asynccontextmanager
async def _no_listen() -> AsyncIterator[asyncio.Event | None]:
    yield None


class SqliteDialect:
    """:class:`~..interface.DialectSupport` for SQLite."""

    name = "sqlite"
    # The library's engine issues BEGIN IMMEDIATE on every transaction start; single
    # statements keep explicit transactions (autocommit would leave that one open).
    autocommit_statements = False
    #: Array parameters (``= ANY(:ids)``, ``unnest(:a, :b)``): many rows in one statement.
    supports_arrays = False
    supports_listen = False

    default_driver = "aiosqlite"
    supports_schemas = False
    #: No streaming replicas.
    replication: ReplicationSql | None = None
    #: Specification operators and JSON access (``specs/``).
    spec_operators = specs.OPERATORS
    json_access = specs.JSON_ACCESS

    def engine_arguments(
        self,
        url: URL,
        kwargs: dict[str, Any],
        *,
        statement_timeout_ms: int | None,
        lock_timeout_ms: int | None,
    ) -> tuple[URL, dict[str, Any]]:
        return url, kwargs  # SQLAlchemy converts SQLite's URL parameters itself

    def pooled_engine_arguments(
        self,
        url: URL,
        kwargs: dict[str, Any],
        *,
        mode: str,
        statement_timeout_ms: int | None,
        lock_timeout_ms: int | None,
    ) -> tuple[URL, dict[str, Any], Pooler]:
        raise ConfigurationError(
            f"pooler={mode!r} is for PostgreSQL behind a connection pooler; SQLite has none"
        )

    def configure_engine(self, engine: AsyncEngine, *, lock_timeout_ms: int | None) -> None:
        if lock_timeout_ms is None:
            configure_sqlite_engine(engine)
        else:
            configure_sqlite_engine(engine, busy_timeout_ms=int(lock_timeout_ms))

    def with_session_defaults(self, url: URL, *, schema: str | None, connect_timeout: float) -> URL:
        if schema:
            raise ConfigurationError("a schema applies to PostgreSQL only, not to SQLite")
        return url

    def sqlalchemy_dialect(self) -> Dialect:
        return sqlite.dialect()

    def insert(self, table: Table) -> UpsertInsert:
        return dml.insert(table)

    def insert_ignore(self, table: Table, conflict_columns: Sequence[Any]) -> Insert:
        return dml.insert_ignore(table, conflict_columns)

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        return dml.one_of(column, name)

    def insert_many(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        json_columns: Sequence[str] = (),
        shared_columns: Sequence[str] = (),
        ignore_conflicts_on: Sequence[str] | None = None,
    ) -> Insert:
        return dml.insert_many(
            table,
            columns,
            json_columns=json_columns,
            shared_columns=shared_columns,
            ignore_conflicts_on=ignore_conflicts_on,
        )

    def insert_one(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        json_columns: Sequence[str] = (),
        ignore_conflicts_on: Sequence[str] | None = None,
    ) -> Insert:
        return dml.insert_one(
            table, columns, json_columns=json_columns, ignore_conflicts_on=ignore_conflicts_on
        )

    def json_from_text(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return dml.json_from_text(value)

    def claim_statement(
        self, table: Table, candidates: Select[Any], due: Any, values: Mapping[str, Any]
    ) -> Update:
        return queue.claim_statement(table, candidates, due, values)

    def event_log(self, *, ordering: Ordering, channel: str, notify: bool) -> EventLogSql:
        # One writer at a time: positions are commit-ordered whatever ``ordering`` says.
        return _SERIAL_LOG

    async def horizon_holder(self, runner: StatementRunner) -> HorizonHolder | None:
        return None  # one writer at a time: no open transaction hides committed events

    def notify_statement(self, channel: str) -> Executable | None:
        return None

    def listener(self, engine: AsyncEngine, channel: str) -> Listener | None:
        return None

    def listen_event(
        self, engine: AsyncEngine, channel: str
    ) -> AbstractAsyncContextManager[asyncio.Event | None]:
        return _no_listen()
