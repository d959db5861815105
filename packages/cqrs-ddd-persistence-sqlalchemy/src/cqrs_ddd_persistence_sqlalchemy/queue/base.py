"""The plumbing of :class:`~.durable.DurableQueue`: construction, the bind, where an operation
runs, kept statements, pinning."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from sqlalchemy import BindParameter, ColumnElement, Table, and_, or_

from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.pinning import unpinned
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor, Pin, kept
from cqrs_ddd_persistence_sqlalchemy.queue.backoff import DEFAULT_BACKOFF, Backoff
from cqrs_ddd_persistence_sqlalchemy.queue.claims import sort_keys
from cqrs_ddd_persistence_sqlalchemy.tables.queue import PENDING_SQL

__all__ = ["Build", "QueueBase", "check_queue"]

_REQUIRED = ("id", "status", "available_at", "locked_until", "lease_token", "attempts",
             "last_error", "created_at", "finished_at")  # fmt: skip

#: The backoff jitter's source unless one is given: one per process, since seeding a
#: ``random.Random`` (from ``os.urandom``) cost more than the rest of building a store, which
#: applications do per request.
_JITTER = random.Random()

#: Tables already found to have every queue column: stores are built per request, and the
#: check cost more than the rest of building one.
_QUEUE_TABLES: WeakSet[Table] = WeakSet()

#: Table -> its default claim order (``id``) and that order's sort keys.
_DEFAULT_ORDER: WeakKeyDictionary[
    Table, tuple[tuple[ColumnElement[Any], ...], tuple[tuple[Callable[[Any], Any], bool], ...]]
] = WeakKeyDictionary()

#: ``build(dialect)`` -> a statement with bound parameters only.
Build = Callable[[DialectSupport], Any]


def check_queue(
    table: Table, key_column: str | None, lease_seconds: float, max_attempts: int
) -> None:
    """Refuse a table without the queue's columns, or limits that cannot work
    (``ConfigurationError``)."""
    known = table in _QUEUE_TABLES
    missing = [] if known else [c for c in _REQUIRED if c not in table.c]
    if key_column is not None and key_column not in table.c:
        missing.append(key_column)
    if missing:
        raise ConfigurationError(
            f"table {table.name!r} is not a queue table: missing columns {missing} "
            "(build it with queue_columns())"
        )
    if not known:
        _QUEUE_TABLES.add(table)
    if lease_seconds <= 0 or max_attempts < 1:
        raise ConfigurationError("lease_seconds must be > 0 and max_attempts >= 1")


class QueueBase:
    """Construction and plumbing shared by the queue's verbs (see ``DurableQueue``)."""

    def __init__(
        self,
        table: Table,
        bind: Any = None,
        *,
        lease_seconds: float = 30.0,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        key_column: str | None = None,
        order_by: Sequence[ColumnElement[Any]] | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        check_queue(table, key_column, lease_seconds, max_attempts)
        self.table = table
        self.binding = Binding(bind, owner=f"the queue of {table.name!r}")
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff = backoff or DEFAULT_BACKOFF
        self.key_column = key_column
        if order_by is None:
            # The default order's plan, worked out once per table (stores are built per request).
            plan = _DEFAULT_ORDER.get(table)
            if plan is None:
                ids = (table.c.id,)
                plan = _DEFAULT_ORDER[table] = (ids, sort_keys(table, ids))
            self.order_by, self._sort_keys = plan
        else:
            self.order_by = tuple(order_by or (table.c.id,))
            self._sort_keys = sort_keys(table, self.order_by)
        self._only_checked: set[tuple[str, ...]] = set()
        #: Enqueued column names -> (every column written, the JSON ones among them).
        self._insert_columns: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.clock = clock
        self._rng = rng or _JITTER
        # A per-row attempt limit: the row's own ``max_attempts`` column when the table has one.
        self._row_limit = table.c.get("max_attempts")
        self._statements: dict[tuple[DialectSupport, Hashable], Any] = {}

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        """The engine behind the bind, if any (LISTEN needs one)."""
        return self.binding.engine

    def dialect(self, uow: Any = None) -> DialectSupport:
        """The dialect an operation with ``uow`` runs on."""
        joined = self.binding.resolve_uow(uow)
        if joined is not None:
            return dialect_for(joined.dialect)
        engine = self.binding.engine
        if engine is not None:
            return dialect_for(engine.dialect)
        return self.binding.dialect(uow)

    def statement(self, name: Hashable, build: Build, dialect: DialectSupport) -> Any:
        """The statement ``build(dialect)`` kept under ``name``: built once per dialect with
        bound parameters (building and cache-keying a claim statement costs more than running
        it on a warm connection; a kept statement also qualifies for the fast path)."""
        key = (dialect, name)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = kept(build(dialect))
        return stmt

    def transaction(self, uow: Any = None) -> AbstractAsyncContextManager[Executor]:
        """The executor of a multi-statement operation: the joined unit of work's, or a short
        transaction of its own on the queue's engine."""
        if self.binding.resolve_uow(uow) is None:
            execution = self.binding.execution()
            if execution is not None:
                return execution.transaction()
        return self.binding.transaction(uow)

    async def run(
        self, name: Hashable, build: Build, params: Mapping[str, Any], *, uow: Any = None
    ) -> Sequence[Mapping[str, Any]]:
        """Run one statement that is atomic on its own; return its rows as mappings.

        ``build(dialect)`` makes the statement (bound parameters only); it is built once per
        dialect and kept under ``name``. Outside a unit of work it goes through the engine's
        execution (autocommit, one round trip; the task's pinned connection if any); in a unit
        of work it joins its transaction, as every write does.

        Example::

            rows = await queue.run(
                "touch",
                lambda d: update(t).where(t.c.id == bindparam("id")).returning(t.c.id),
                {"id": 7},
            )
        """
        if self.binding.resolve_uow(uow) is None:
            execution = self.binding.execution()
            if execution is not None:
                stmt = self.statement(name, build, dialect_for(execution.dialect))
                return await execution.fetch_mappings(stmt, params)
        async with self.transaction(uow) as executor:
            stmt = self.statement(name, build, dialect_for(executor.dialect))
            return await executor.fetch_mappings(stmt, params)

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[Pin | None]:
        """Run this task's own operations on one connection held for the block.

        A worker loop (``OutboxRelay.run`` does this) saves a pool checkout per claim and per
        settle. Operations inside a unit of work are unaffected; tasks created inside the
        block inherit the pin, so concurrent helpers wrap themselves in :meth:`unpinned` — or,
        to share the connection one at a time, ``async with pin.borrow():`` with the pin the
        block yields (``None`` when the queue has no engine). If the connection breaks, the
        operations that meet the loss raise ``ConnectionLostError`` and later ones run on
        pooled connections (``pin.lost``); leave the block and pin again to hold a new one.
        """
        execution = self.binding.execution()
        if execution is None:
            yield None
            return
        async with execution.pinned() as pin:
            yield pin

    @staticmethod
    def unpinned() -> AbstractContextManager[None]:
        """Inside a task that inherited a pin: use pool checkouts again (concurrent use)."""
        return unpinned()

    def due_condition(self, now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
        """Pending, available, and not leased (or lease expired)."""
        t = self.table
        return and_(
            t.c.status == PENDING_SQL,
            t.c.available_at <= now,
            or_(t.c.locked_until.is_(None), t.c.locked_until <= now),
        )
