"""PostgreSQL: ``SKIP LOCKED`` claims, the commit-safe ``xid8`` event log, LISTEN/NOTIFY,
``ON CONFLICT`` DML (and, in ``specs``, the JSONB / full-text / PostGIS
specification operators)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, Update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert

from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import HorizonHolder, Ordering
from cqrs_ddd_persistence_sqlalchemy.dialects.interface import (
    EventLogSql,
    Listener,
    ReplicationSql,
    UpsertInsert,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql import (
    activity,
    dml,
    engine,
    pooler,
    queue,
    specs,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.event_log import PostgresEventLog
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.listen import (
    NotificationListener,
    listen_event,
    listens,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.replication import PostgresReplication
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.pooling import Pooler, pooler_of

__all__ = ["PostgresDialect"]


class PostgresDialect:
    """:class:`~..interface.DialectSupport` for PostgreSQL (asyncpg or psycopg 3)."""

    name = "postgresql"

    def __init__(self) -> None:
        self._event_logs: dict[tuple[Ordering, str, bool], EventLogSql] = {}

    # One statement is atomic on its own: single-statement operations run in autocommit
    # (no BEGIN/COMMIT round trips).
    autocommit_statements = True
    #: Array parameters (``= ANY(:ids)``, ``unnest(:a, :b)``): many rows in one statement.
    supports_arrays = True
    supports_listen = True

    default_driver = "asyncpg"
    supports_schemas = True
    #: Read replicas: hot standbys, read-your-writes by WAL position (``replication.py``).
    replication: ReplicationSql | None = PostgresReplication()
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
        return engine.engine_arguments(
            url, kwargs, statement_timeout_ms=statement_timeout_ms, lock_timeout_ms=lock_timeout_ms
        )

    def configure_engine(self, engine: AsyncEngine, *, lock_timeout_ms: int | None) -> None:
        return None  # everything is in the connect arguments

    def pooled_engine_arguments(
        self,
        url: URL,
        kwargs: dict[str, Any],
        *,
        mode: str,
        statement_timeout_ms: int | None,
        lock_timeout_ms: int | None,
    ) -> tuple[URL, dict[str, Any], Pooler]:
        return pooler.pooled_engine_arguments(
            url,
            kwargs,
            mode=mode,
            statement_timeout_ms=statement_timeout_ms,
            lock_timeout_ms=lock_timeout_ms,
        )

    def with_session_defaults(self, url: URL, *, schema: str | None, connect_timeout: float) -> URL:
        return engine.with_session_defaults(url, schema=schema, connect_timeout=connect_timeout)

    def sqlalchemy_dialect(self) -> Dialect:
        return postgresql.dialect()  # type: ignore[no-untyped-call, no-any-return, unused-ignore]

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
        # One per configuration and process: stores built per request share it, and with it
        # the NOTIFY coalescer of their channel (its decisions are about the process's appends).
        key = (ordering, channel, notify)
        log = self._event_logs.get(key)
        if log is None:
            log = self._event_logs[key] = PostgresEventLog(
                ordering=ordering, channel=channel, notify=notify
            )
        return log

    async def horizon_holder(self, runner: StatementRunner) -> HorizonHolder | None:
        return await activity.horizon_holder(runner)

    def notify_statement(self, channel: str) -> Executable | None:
        return queue.notify_statement(channel)

    def listener(self, engine: AsyncEngine, channel: str) -> Listener | None:
        if not listens(engine) or pooler_of(engine) is not None:
            # a driver this module cannot LISTEN with, or a transaction-mode pooler (a LISTEN
            # holds a session; through the pooler it would stay on one shared server
            # connection and miss notifications): poll
            return None
        return NotificationListener(engine, channel)

    def listen_event(
        self, engine: AsyncEngine, channel: str
    ) -> AbstractAsyncContextManager[asyncio.Event | None]:
        return listen_event(engine, channel, enabled=pooler_of(engine) is None)
