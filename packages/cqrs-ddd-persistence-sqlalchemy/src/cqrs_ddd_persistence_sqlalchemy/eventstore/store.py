"""``SQLAlchemyEventStore``: append-only streams and a commit-safe global log.

See ``core/EVENT_STORE.md`` for the design (expected versions, the ``xid8`` horizon,
LISTEN/NOTIFY, tombstones) and runnable examples. Statements go through the execution seam;
the SQL that differs between databases is the dialect's event log (``dialects/*/event_log.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable

from cqrs_ddd_core.domain.event_registry import EventTypeRegistry, default_registry
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.ports.event_store import ExpectedVersion, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import (
    HorizonStatus,
    Ordering,
    event_text_columns,
    not_tombstoned,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.interface import EventLogSql
from cqrs_ddd_persistence_sqlalchemy.eventstore.appending import Appender
from cqrs_ddd_persistence_sqlalchemy.eventstore.global_log import GlobalLog
from cqrs_ddd_persistence_sqlalchemy.eventstore.mapping import hydrate_rows, row_to_event
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner, kept
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span
from cqrs_ddd_persistence_sqlalchemy.schema import check_channel
from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table

__all__ = ["MAX_VERSION", "Ordering", "SQLAlchemyEventStore"]

#: Larger than any stream version (the open end of version ranges).
MAX_VERSION = 1 << 62

_t = events_table.c
# Built once with named parameters: SQLAlchemy's compiled cache and the fast path both key on
# the statement. Payload and metadata come back as text (see ``event_text_columns``).
_STREAM_READ = kept(
    select(*event_text_columns())
    .where(
        _t.stream_id == bindparam("stream_id", type_=String),
        _t.version >= bindparam("from_version", type_=BigInteger),
        _t.version <= bindparam("to_version", type_=BigInteger),
        not_tombstoned(bindparam("stream_id", type_=String)),
    )
    .order_by(_t.version)
)
_STREAM_VERSION = kept(
    select(func.coalesce(func.max(_t.version), 0)).where(
        _t.stream_id == bindparam("stream_id", type_=String)
    )
)
_STREAM_EXISTS = kept(
    select(
        exists().where(
            _t.stream_id == bindparam("stream_id", type_=String),
            not_tombstoned(bindparam("stream_id", type_=String)),
        )
    )
)


class SQLAlchemyEventStore:
    """Event store on SQLAlchemy (PostgreSQL first, SQLite for development).

    Build it with any bind (engine, session factory, session, unit of work or unit-of-work
    factory, see :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`); every call joins the
    ``uow=`` argument or the ambient unit of work, else runs on its own::

        store = SQLAlchemyEventStore(session_factory)
        await store.append(
            StoredEvent(event_type="OrderCreated", aggregate_id="order-1", payload={"total": 5}),
            expected_version=StreamState.NO_STREAM,
        )
        events = await store.get_events("order-1")

        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await store.append(more_events, expected_version=1)   # joins the ambient uow
            await uow.commit()

    Args:
        bind: engine, session factory, session, unit of work or unit-of-work factory.
        ordering: ``Ordering.COMMIT_SAFE`` (default, the ``xid8`` horizon on PostgreSQL) or
            ``Ordering.LOCK_TABLE`` (serialised appends, position-ordered log).
        notify: send a NOTIFY in every appending transaction (PostgreSQL).
        listen: let :meth:`subscribe` LISTEN for those notifications (PostgreSQL on asyncpg).
        poll_interval: seconds between polls of :meth:`subscribe` when nothing woke it;
            ``None`` disables polling.
        channel: the LISTEN/NOTIFY channel (1 to 63 bytes).
        registry: event type registry used by :meth:`load_events` / :meth:`to_domain_event`.
        engine: engine for the LISTEN connection (default: the one behind the bind).
    """

    def __init__(
        self,
        bind: Any = None,
        *,
        ordering: Ordering = Ordering.COMMIT_SAFE,
        notify: bool = True,
        listen: bool = True,
        poll_interval: float | None = 0.5,
        channel: str = "cqrs_events",
        registry: EventTypeRegistry | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.binding = Binding(bind, owner="SQLAlchemyEventStore")
        self.ordering = ordering
        self.notify = notify
        self.listen = listen
        self.poll_interval = poll_interval
        # Refused now rather than at the first append.
        self.channel = check_channel(channel)
        self.registry = registry if registry is not None else default_registry
        self._engine = engine
        self._logs: dict[str, EventLogSql] = {}

    # -- plumbing ----------------------------------------------------------------------------
    def log_for(self, uow: Any = None) -> EventLogSql:
        """The dialect half of the log for an operation with ``uow``."""
        support = self.binding.dialect(uow)
        log = self._logs.get(support.name)
        if log is None:
            log = self._logs[support.name] = support.event_log(
                ordering=self.ordering, channel=self.channel, notify=self.notify
            )
        return log

    def listen_engine(self) -> AsyncEngine | None:
        """The engine of the LISTEN connection (explicit, or the one behind the bind)."""
        return self._engine if self._engine is not None else self.binding.engine

    async def _fetch(
        self, statement: Executable, params: dict[str, Any] | None, uow: Any
    ) -> Sequence[Sequence[Any]]:
        """Rows of one read statement: in the joined unit of work, else on its own (one
        autocommit round trip where the dialect allows it)."""
        return await self.binding.fetch(statement, params, uow)

    # -- writing -----------------------------------------------------------------------------
    async def append(
        self,
        events: StoredEvent | Sequence[StoredEvent],
        *,
        expected_version: ExpectedVersion = StreamState.ANY,
        uow: Any = None,
    ) -> list[StoredEvent]:
        """Append events to one stream in one statement; returns them with version/position.

        The expected version (``StreamState.ANY`` / ``NO_STREAM`` / ``STREAM_EXISTS`` or the
        exact version of the stream's last event) is checked before positions are drawn. A
        retry of a batch that is already stored (same event ids) returns the stored events.

        Raises:
            WrongExpectedVersionError: the stream is at another version.
            NotFoundError: the stream was deleted (tombstoned).
            UniqueViolationError: some, not all, of the event ids are already stored.
        """
        return await Appender(self).append(events, expected_version, uow)

    async def write_events(self, events: Sequence[DomainEvent], *, uow: Any) -> None:
        """``EventSink`` hook: append a unit of work's collected events, one batch per stream.

        ``SQLAlchemyUnitOfWork(session_factory, event_sinks=[store])`` writes the events of the
        aggregates it saved in the same transaction (expected version: any).
        """
        streams: dict[str, list[StoredEvent]] = {}
        for event in events:
            stored = StoredEvent.from_domain_event(event)
            streams.setdefault(stored.aggregate_id, []).append(stored)
        for batch in streams.values():
            await self.append(batch, uow=uow)

    async def delete_stream(
        self,
        stream_id: str,
        *,
        hard: bool = False,
        reason: str | None = None,
        uow: Any = None,
    ) -> None:
        """Tombstone a stream: its reads come back empty and appends are refused.

        Nothing is renumbered: other streams' versions and every global position stay as they
        are. ``hard=True`` also deletes the stream's rows (they leave the global log too).
        """
        await Appender(self).delete_stream(stream_id, hard=hard, reason=reason, uow=uow)

    async def archive_stream(
        self, stream_id: str, *, reason: str | None = None, uow: Any = None
    ) -> None:
        """Soft tombstone (``delete_stream(hard=False)``): rows stay in the global log."""
        await self.delete_stream(stream_id, reason=reason, uow=uow)

    # -- stream reads ------------------------------------------------------------------------
    async def get_events(
        self,
        aggregate_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        uow: Any = None,
    ) -> list[StoredEvent]:
        """The events of one stream in version order (empty for a deleted stream)."""
        with db_span(self.binding.engine, "read", "cqrs_events"):
            rows = await self._stream_rows(aggregate_id, from_version, to_version, uow)
        return [row_to_event(r) for r in rows]

    async def load_events(
        self,
        aggregate_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        uow: Any = None,
    ) -> list[DomainEvent]:
        """Like :meth:`get_events`, as registered ``DomainEvent`` classes (upcast first)."""
        with db_span(self.binding.engine, "read", "cqrs_events"):
            rows = await self._stream_rows(aggregate_id, from_version, to_version, uow)
        return hydrate_rows(self.registry, rows)

    async def _stream_rows(
        self, aggregate_id: str, from_version: int | None, to_version: int | None, uow: Any
    ) -> Sequence[Sequence[Any]]:
        params = {
            "stream_id": aggregate_id,
            "from_version": from_version if from_version is not None else -MAX_VERSION,
            "to_version": to_version if to_version is not None else MAX_VERSION,
        }
        return await self._fetch(_STREAM_READ, params, uow)

    def to_domain_event(self, stored: StoredEvent) -> DomainEvent:
        """The typed event of a stored one, through the registry (with upcasting)."""
        return self.registry.hydrate(
            stored.event_type,
            stored.payload,
            schema_version=stored.schema_version,
            envelope=stored.envelope(),
        )

    async def get_version(
        self, aggregate_id: str, *, uow: Any = None, _runner: StatementRunner | None = None
    ) -> int:
        """The version of the stream's last event (0 when the stream has none)."""
        params = {"stream_id": aggregate_id}
        if _runner is not None:
            return int((await _runner.fetch(_STREAM_VERSION, params))[0][0])
        return int((await self._fetch(_STREAM_VERSION, params, uow))[0][0])

    async def stream_exists(self, aggregate_id: str, *, uow: Any = None) -> bool:
        """Whether the stream has events and is not deleted."""
        return bool((await self._fetch(_STREAM_EXISTS, {"stream_id": aggregate_id}, uow))[0][0])

    # -- the global log ----------------------------------------------------------------------
    async def read_all(
        self,
        *,
        after: str | None = None,
        limit: int = 1000,
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        tenant_id: str | None = None,
        uow: Any = None,
    ) -> tuple[list[StoredEvent], str | None]:
        """Committed events after the opaque cursor ``after`` and the cursor to go on from.

        Never skips: on PostgreSQL only events of transactions below the horizon
        (``pg_snapshot_xmin``) are returned, in ``(txid, position)`` order. ``event_types``
        / ``aggregate_types`` (the category) / ``tenant_id`` narrow the result.
        """
        return await GlobalLog(self).read_all(
            after=after,
            limit=limit,
            event_types=event_types,
            aggregate_types=aggregate_types,
            tenant_id=tenant_id,
            uow=uow,
        )

    def subscribe(
        self,
        *,
        after: str | None = None,
        batch_size: int = 500,
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        tenant_id: str | None = None,
        on_cursor: Callable[[str | None], Any] | None = None,
    ) -> AsyncIterator[StoredEvent]:
        """Tail the global log from ``after``: every committed event exactly once, in order.

        Waits for a NOTIFY (PostgreSQL on asyncpg, when ``listen``) or ``poll_interval``. With
        both switched off it stops when it has caught up. ``on_cursor(cursor)`` is called
        after each page (e.g. to persist a checkpoint)::

            async for event in store.subscribe(after=checkpoint):
                await handle(event)

        To leave the loop early, wrap it in ``contextlib.aclosing(store.subscribe(...))`` so
        the LISTEN connection is released at once rather than when the generator is collected.
        """
        return GlobalLog(self).subscribe(
            after=after,
            batch_size=batch_size,
            event_types=event_types,
            aggregate_types=aggregate_types,
            tenant_id=tenant_id,
            on_cursor=on_cursor,
        )

    async def horizon_lag(self, *, uow: Any = None) -> HorizonStatus:
        """How far committed events are held back from global readers (for health checks).

        On PostgreSQL: the horizon transaction id, the number of stored events at or above it
        and the age / pid of the oldest transaction holding it back. Always zero on SQLite.
        """
        return await GlobalLog(self).horizon_lag(uow=uow)
