"""What the library asks of a database dialect: one typed interface.

Generic code never looks at ``dialect.name``: it asks :func:`~.dialect_for` for the
:class:`DialectSupport` of its connection or engine (resolved once per SQLAlchemy dialect
instance) and uses the pieces below. Where only the SQL text differs, types and constructs use
``@compiles`` instead (``JSONType``, ``Xid8``, ``utcnow``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, Select, Table, Update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert

from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import (
    Cursor,
    GlobalFilter,
    HorizonHolder,
    HorizonStatus,
    Ordering,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import JsonAccess, OperatorFn
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.pooling import Pooler
from cqrs_ddd_specifications import Operator

if TYPE_CHECKING:
    from cqrs_ddd_core.ports.event_store import StoredEvent

#: The ``INSERT`` of a dialect with ``ON CONFLICT``: ``excluded``, ``on_conflict_do_update``,
#: ``on_conflict_do_nothing``.
UpsertInsert = postgresql.Insert | sqlite.Insert

__all__ = [
    "DialectSupport",
    "EventLogSql",
    "Listener",
    "ReplicaStatus",
    "ReplicationSql",
    "UpsertInsert",
]


class Listener(Protocol):
    """A LISTEN connection: ``await wait(timeout)`` returns early on a notification."""

    channel: str

    async def start(self) -> None: ...

    @property
    def listening(self) -> bool: ...

    def wake(self) -> None: ...

    async def wait(self, seconds: float) -> bool: ...

    async def close(self) -> None: ...


class EventLogSql(Protocol):
    """The dialect-specific half of the event store (appends, global pages, horizon)."""

    ordering: Ordering
    #: Whether an append outside a unit of work is one statement that may run in autocommit.
    single_statement_append: bool

    async def append(
        self,
        runner: StatementRunner,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
        *,
        guarded: bool,
        autocommit: bool,
    ) -> list[tuple[int, int]] | None:
        """Insert ``rows`` if the stream version is within ``version_range`` (inclusive), no
        event id is stored yet and the stream is not tombstoned (and wake subscribers, where
        supported). Returns ``(position, version)`` per row in order, or ``None`` when a
        precondition failed (nothing drawn). ``guarded``: a lost race must not spoil the
        (caller's) transaction. ``autocommit``: ``runner`` is an ``Execution`` running the
        append as one statement of its own (only when :attr:`single_statement_append`)."""
        ...

    def page_query(self, after: Cursor, limit: int, flt: GlobalFilter) -> Select[Any]:
        """One page of the global log after ``after`` (see ``eventlog.select_page``)."""
        ...

    #: How many ordering columns a page has (the cursor's parts): 2 for ``(txid, position)``.
    cursor_width: int

    async def horizon(self, runner: StatementRunner) -> HorizonStatus: ...


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What a replica says of itself (see :class:`ReplicationSql`)."""

    #: Whether the server is a standby in recovery (a promoted one is not a replica any more).
    standby: bool
    #: How far it has replayed the primary's WAL (a byte position).
    replayed: int
    #: Seconds since the commit it replayed last was made on the primary (``None``: none yet).
    replay_age: float | None


class ReplicationSql(Protocol):
    """WAL positions of a primary and its streaming replicas (read replicas, ``replicas/``)."""

    async def commit_position(self, runner: StatementRunner) -> int: ...

    async def primary_position(self, runner: StatementRunner) -> int: ...

    async def replayed(self, runner: StatementRunner) -> int: ...

    async def status(self, runner: StatementRunner) -> ReplicaStatus: ...


class DialectSupport(Protocol):
    """Everything dialect-specific the library needs, for one dialect."""

    #: SQLAlchemy's dialect name (``postgresql``, ``sqlite``).
    name: str
    #: Whether one statement may run outside a transaction (autocommit) and still be atomic.
    autocommit_statements: bool
    #: Whether the dialect can LISTEN for notifications.
    supports_listen: bool
    #: Whether array parameters work (``= ANY(:ids)``, ``unnest(:a, :b)``).
    supports_arrays: bool

    #: The async driver a plain ``<name>://`` URL gets (``asyncpg``, ``aiosqlite``).
    default_driver: str
    #: Whether the database has schemas (``search_path``).
    supports_schemas: bool
    #: WAL positions for read replicas (``None``: the database has no streaming replicas).
    replication: ReplicationSql | None

    # -- engines -------------------------------------------------------------------------
    def engine_arguments(
        self,
        url: URL,
        kwargs: dict[str, Any],
        *,
        statement_timeout_ms: int | None,
        lock_timeout_ms: int | None,
    ) -> tuple[URL, dict[str, Any]]:
        """The URL and ``create_async_engine`` keyword arguments the library builds an
        engine with (driver parameters, session timeouts)."""
        ...

    def configure_engine(self, engine: AsyncEngine, *, lock_timeout_ms: int | None) -> None:
        """Install what the library relies on in an engine (idempotent)."""
        ...

    def pooled_engine_arguments(
        self,
        url: URL,
        kwargs: dict[str, Any],
        *,
        mode: str,
        statement_timeout_ms: int | None,
        lock_timeout_ms: int | None,
    ) -> tuple[URL, dict[str, Any], Pooler]:
        """:meth:`engine_arguments` for an engine behind a ``mode`` pooler
        (``create_engine(pooler=...)``), and the :class:`~...pooling.Pooler` to install on
        the engine once it exists (``ConfigurationError`` where the dialect has no pooler
        support)."""
        ...

    def with_session_defaults(self, url: URL, *, schema: str | None, connect_timeout: float) -> URL:
        """``url`` with a connect timeout and, where the database has schemas, ``schema`` first
        on the search path (``ConfigurationError`` where it has none)."""
        ...

    def sqlalchemy_dialect(self) -> Dialect:
        """A SQLAlchemy dialect object of this database (to compile DDL without an engine)."""
        ...

    # -- DML -----------------------------------------------------------------------------
    def insert(self, table: Table) -> UpsertInsert:
        """The dialect's ``INSERT`` (with ``on_conflict_do_update`` / ``_do_nothing``)."""
        ...

    def insert_ignore(self, table: Table, conflict_columns: Sequence[Any]) -> Insert:
        """``INSERT … ON CONFLICT (conflict_columns) DO NOTHING``: only that conflict is
        swallowed (rowcount 0); any other violation still raises."""
        ...

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """``column`` is one of the list bound as parameter ``name``."""
        ...

    def insert_many(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        json_columns: Sequence[str] = (),
        shared_columns: Sequence[str] = (),
        ignore_conflicts_on: Sequence[str] | None = None,
    ) -> Insert:
        """One ``INSERT`` of many rows into ``columns`` (built once per arguments).

        With :attr:`supports_arrays` it takes one array parameter per column, named after the
        column, with one item per row, and inserts the batch in one statement (PostgreSQL:
        ``INSERT … SELECT … FROM unnest(:a, :b, …)``); a column of ``shared_columns`` has the
        same value in every row and takes it once, as a scalar parameter. Otherwise it takes
        one parameter set per row (an ``executemany``), shared columns included. Values of
        ``json_columns`` are JSON text (the library's codec). ``ignore_conflicts_on``:
        ``ON CONFLICT (…) DO NOTHING``.
        """
        ...

    def insert_one(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        json_columns: Sequence[str] = (),
        ignore_conflicts_on: Sequence[str] | None = None,
    ) -> Insert:
        """``INSERT`` of one row into ``columns``, one scalar parameter per column (named after
        it), nothing else computed on the client (the columns left out get their server
        defaults), so that the statement can be kept and run on the driver. JSON columns and
        ``ignore_conflicts_on`` as in :meth:`insert_many`."""
        ...

    def json_from_text(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """A JSON column value from JSON text (PostgreSQL: ``CAST(… AS JSONB)``)."""
        ...

    # -- durable queue -------------------------------------------------------------------
    def claim_statement(
        self, table: Table, candidates: Select[Any], due: Any, values: Mapping[str, Any]
    ) -> Update:
        """Lease the ``candidates`` rows that are still ``due`` (one statement)."""
        ...

    # -- event log -----------------------------------------------------------------------
    def event_log(self, *, ordering: Ordering, channel: str, notify: bool) -> EventLogSql: ...

    async def horizon_holder(self, runner: StatementRunner) -> HorizonHolder | None:
        """The session whose open transaction holds the event log's commit-safe horizon back
        (the oldest one with a transaction id), or ``None``: none does, or the database has no
        such sessions (SQLite's single writer holds nothing back from readers)."""
        ...

    # -- notifications -------------------------------------------------------------------
    def notify_statement(self, channel: str) -> Executable | None:
        """A statement that sends a wake-up on ``channel`` at commit (``None``: no NOTIFY)."""
        ...

    def listener(self, engine: AsyncEngine, channel: str) -> Listener | None:
        """A LISTEN connection for ``channel`` (``None``: the dialect or driver has none)."""
        ...

    def listen_event(
        self, engine: AsyncEngine, channel: str
    ) -> AbstractAsyncContextManager[asyncio.Event | None]:
        """An ``asyncio.Event`` set on every notification of ``channel`` for the block
        (``None``: unavailable, poll)."""
        ...

    # -- specifications --------------------------------------------------------------------
    #: The dialect's own specification operators (JSON, full text, geometry, text), by
    #: operator: the compiler takes them after a registry's overrides for this dialect and
    #: before the registry's portable ones.
    spec_operators: Mapping[Operator, OperatorFn]
    #: How the dialect reads inside JSON documents (JSON fields of specifications).
    json_access: JsonAccess
