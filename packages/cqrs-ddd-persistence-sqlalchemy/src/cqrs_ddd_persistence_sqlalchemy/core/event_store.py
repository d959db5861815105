"""``SQLAlchemyEventStore``: append-only streams and a commit-safe global log.

See ``EVENT_STORE.md`` next to this module for the design (expected versions, the ``xid8``
horizon, LISTEN/NOTIFY, tombstones) and runnable examples.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from cqrs_ddd_core.adapters.memory.event_store import check_expected_version
from cqrs_ddd_core.domain.event_registry import EventTypeRegistry, RowLayout, default_registry
from cqrs_ddd_core.domain.events import DomainEvent, utc_now
from cqrs_ddd_core.errors import (
    ConfigurationError,
    InvalidValueError,
    NotFoundError,
    PersistenceError,
    UniqueViolationError,
    WrongExpectedVersionError,
)
from cqrs_ddd_core.ports.event_store import ExpectedVersion, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.core.event_log import (
    Cursor,
    EventLog,
    GlobalFilter,
    HorizonStatus,
    Ordering,
    event_text_columns,
    not_tombstoned,
    page_cursor,
)
from cqrs_ddd_persistence_sqlalchemy.core.event_tables import (
    UQ_EVENT_ID,
    UQ_STREAM_VERSION,
    events_table,
    stream_tombstones_table,
)
from cqrs_ddd_persistence_sqlalchemy.core.session import SessionSource, StoreBind
from cqrs_ddd_persistence_sqlalchemy.core.unit_of_work import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.errors import translating
from cqrs_ddd_persistence_sqlalchemy.serialization import json_loads

__all__ = ["Ordering", "SQLAlchemyEventStore", "resolve_store_bind"]

_MAX_VERSION = 1 << 62


def resolve_store_bind(bind: Any) -> StoreBind:
    """Accept a unit-of-work factory too (the seed builds stores from ``uow_factory``).

    A plain callable is probed once: if it returns a :class:`SQLAlchemyUnitOfWork`, the store
    uses that unit of work's session factory for its own short transactions.
    """
    if bind is None or isinstance(bind, AsyncSession | AsyncEngine | SQLAlchemyUnitOfWork):
        return bind
    if callable(bind) and not hasattr(bind, "class_"):  # async_sessionmaker has ``class_``
        probe = bind()
        if isinstance(probe, SQLAlchemyUnitOfWork):
            factory = probe._factory
            if factory is not None:
                return factory
            return probe._borrowed
    return bind  # type: ignore[no-any-return]


def _version_range(
    stream_id: str, expected: ExpectedVersion, batch: Sequence[StoredEvent]
) -> tuple[int, int]:
    """The stream versions (inclusive) at which ``batch`` may be appended."""
    if expected is StreamState.ANY:
        lo, hi = 0, _MAX_VERSION
    elif expected is StreamState.NO_STREAM:
        lo, hi = 0, 0
    elif expected is StreamState.STREAM_EXISTS:
        lo, hi = 1, _MAX_VERSION
    elif isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        lo = hi = expected
    else:
        raise InvalidValueError(f"invalid expected_version {expected!r}")
    first = batch[0].version
    if first is not None:
        # Explicit stream versions must be consecutive and start right after the stream's end.
        if any(e.version != first + i for i, e in enumerate(batch)):
            raise InvalidValueError(f"stream {stream_id!r}: explicit versions must be consecutive")
        lo, hi = max(lo, first - 1), min(hi, first - 1)
        if lo > hi:
            raise WrongExpectedVersionError(stream_id, expected, first - 1)
    return lo, hi


_t = events_table.c
# Built once with named parameters: SQLAlchemy's compiled cache and the asyncpg driver path
# (``postgres/driver.py``) both key on the statement.
# Payload and metadata come back as text and are decoded here (see ``event_text_columns``).
_STREAM_COLUMNS = event_text_columns()
_STREAM_READ = (
    select(*_STREAM_COLUMNS)
    .where(
        _t.stream_id == bindparam("stream_id", type_=String),
        _t.version >= bindparam("from_version", type_=BigInteger),
        _t.version <= bindparam("to_version", type_=BigInteger),
        not_tombstoned(bindparam("stream_id", type_=String)),
    )
    .order_by(_t.version)
)
_STREAM_VERSION = select(func.coalesce(func.max(_t.version), 0)).where(
    _t.stream_id == bindparam("stream_id", type_=String)
)
_STREAM_EXISTS = select(
    exists().where(
        _t.stream_id == bindparam("stream_id", type_=String),
        not_tombstoned(bindparam("stream_id", type_=String)),
    )
)


def _meta(text: str | None) -> dict[str, Any]:
    return json_loads(text) if text else {}


#: Columns of ``event_text_columns()`` by field, for ``EventTypeRegistry.hydrate_rows``.
_TEXT_ROW_LAYOUT = RowLayout(
    event_type=4,
    payload=7,
    schema_version=6,
    event_id=1,
    occurred_at=9,
    aggregate_id=2,
    aggregate_type=5,
    metadata=8,
    correlation_id=10,
    causation_id=11,
)


def _row_to_event(row: Sequence[Any]) -> StoredEvent:
    """A stored event from a row of ``event_text_columns()`` (payload and metadata as JSON
    text). Positional unpacking: several times cheaper than attribute access by name on a
    1,000-event replay."""
    (
        position,
        event_id,
        stream_id,
        version,
        event_type,
        aggregate_type,
        schema_version,
        payload,
        metadata,
        occurred_at,
        correlation_id,
        causation_id,
        tenant_id,
        *_,
    ) = row
    return StoredEvent.from_fields(
        event_type,
        stream_id,
        json_loads(payload),
        event_id,
        aggregate_type,
        version,
        schema_version,
        _meta(metadata),
        occurred_at,
        correlation_id,
        causation_id,
        tenant_id,
        position,
    )


def _pick_log(dialect_name: str, ordering: Ordering, channel: str, notify: bool) -> EventLog:
    if dialect_name == "postgresql":
        from cqrs_ddd_persistence_sqlalchemy.postgres.event_store import PostgresEventLog

        return PostgresEventLog(ordering=ordering, channel=channel, notify=notify)
    from cqrs_ddd_persistence_sqlalchemy.sqlite.event_store import SerialEventLog

    return SerialEventLog()


class SQLAlchemyEventStore:
    """Event store on SQLAlchemy (PostgreSQL first, SQLite for development).

    Build it with a session, a session factory, an engine or a unit of work; every call joins the
    ``uow=`` argument or the ambient unit of work, else runs in a short transaction of its own::

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
        bind: session, session factory, engine, unit of work or unit-of-work factory.
        ordering: ``Ordering.COMMIT_SAFE`` (default, the ``xid8`` horizon on PostgreSQL) or
            ``Ordering.LOCK_TABLE`` (serialised appends, position-ordered log).
        notify: send a NOTIFY in every appending transaction (PostgreSQL); turn off behind
            PgBouncer in transaction mode.
        listen: let :meth:`subscribe` LISTEN for those notifications (asyncpg only).
        poll_interval: seconds between polls of :meth:`subscribe` when nothing woke it;
            ``None`` disables polling.
        channel: the LISTEN/NOTIFY channel.
        registry: event type registry used by :meth:`load_events` / :meth:`to_domain_event`.
        engine: engine for the LISTEN connection (default: the one behind the sessions).
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
        self._source = SessionSource(resolve_store_bind(bind))
        self.ordering = ordering
        self.notify = notify
        self.listen = listen
        self.poll_interval = poll_interval
        if not channel or len(channel.encode()) > 63:
            # PostgreSQL truncates identifiers to 63 bytes and pg_notify refuses longer names:
            # say so now rather than at the first append.
            raise ConfigurationError(
                f"channel must be 1 to 63 bytes (a PostgreSQL identifier), got {channel!r}"
            )
        self.channel = channel
        self.registry = registry if registry is not None else default_registry
        self._engine = engine
        self._logs: dict[str, EventLog] = {}

    # -- plumbing ----------------------------------------------------------------------------
    def _log(self, session: AsyncSession) -> EventLog:
        return self._log_for(session.get_bind().dialect.name)

    def _log_for(self, name: str) -> EventLog:
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = _pick_log(name, self.ordering, self.channel, self.notify)
        return log

    def _own_engine(self) -> AsyncEngine | None:
        """The engine behind the store's own transactions (explicit, or the session factory's)."""
        if self._engine is not None:
            return self._engine
        factory = self._source.factory
        bind = getattr(factory, "kw", {}).get("bind") if factory is not None else None
        return bind if isinstance(bind, AsyncEngine) else None

    @contextlib.asynccontextmanager
    async def _reading(self, uow: Any) -> AsyncIterator[tuple[AsyncConnection, EventLog]]:
        """The connection (and dialect log) for one read statement.

        Outside any unit of work, on a dialect that allows it, the read runs in autocommit on a
        bare pooled connection: one round trip instead of BEGIN / SELECT / COMMIT.
        """
        engine = self._own_engine() if self._source.owns_transaction(uow) else None
        if engine is not None:
            log = self._log_for(engine.dialect.name)
            if log.autocommit_reads:
                with translating():
                    async with engine.connect() as bare:
                        yield await bare.execution_options(isolation_level="AUTOCOMMIT"), log
                return
        async with self._source.session(uow) as session:
            yield await session.connection(), self._log(session)

    async def _read(self, stmt: Any, params: dict[str, Any], uow: Any) -> Sequence[Sequence[Any]]:
        """Rows of a module-level read statement (see :meth:`_reading`; on asyncpg outside a
        unit of work it runs on the driver connection)."""
        engine = self._own_engine() if self._source.owns_transaction(uow) else None
        if engine is not None:
            log = self._log_for(engine.dialect.name)
            if log.autocommit_reads:
                with translating():
                    return await log.read_autocommit(engine, stmt, params)
        async with self._source.session(uow) as session:
            conn = await session.connection()
            return (await conn.execute(stmt, params)).all()

    async def _engine_for_listen(self) -> AsyncEngine | None:
        if self._engine is not None:
            return self._engine
        async with self._source.session() as session:
            bind = session.bind
        if isinstance(bind, AsyncConnection):
            return bind.engine
        return bind if isinstance(bind, AsyncEngine) else None

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
        batch = [events] if isinstance(events, StoredEvent) else list(events)
        if not batch:
            return []
        stream_id = batch[0].aggregate_id
        if any(e.aggregate_id != stream_id for e in batch):
            raise InvalidValueError("one append writes to one stream")
        ids = [e.event_id for e in batch]
        if len(set(ids)) != len(ids):
            raise InvalidValueError(f"stream {stream_id!r}: duplicate event ids in one append")
        version_range = _version_range(stream_id, expected_version, batch)
        # With ``ANY`` a lost race is no conflict for the caller: try again (a refused append
        # leaves the transaction usable, so this works inside the caller's unit of work too).
        retries = 3 if expected_version is StreamState.ANY else 0
        for attempt in range(retries + 1):
            try:
                return await self._append_once(
                    stream_id, batch, expected_version, version_range, ids, uow
                )
            except UniqueViolationError as exc:
                if exc.constraint != UQ_EVENT_ID or not self._source.owns_transaction(uow):
                    raise
                # A concurrent retry of this batch won (only possible in a transaction of our
                # own, see ``guarded``): once more, which returns the stored events.
                return await self._append_once(
                    stream_id, batch, expected_version, version_range, ids, uow
                )
            except WrongExpectedVersionError as exc:
                if attempt < retries:
                    continue
                if exc.actual_version is None and self._source.owns_transaction(uow):
                    # Lost at the unique constraint: our transaction is over, so the winner's
                    # version can be read and named in the error.
                    actual = await self.get_version(stream_id)
                    raise WrongExpectedVersionError(
                        stream_id, expected_version, actual or None
                    ) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _append_once(
        self,
        stream_id: str,
        batch: list[StoredEvent],
        expected_version: ExpectedVersion,
        version_range: tuple[int, int],
        ids: list[str],
        uow: Any,
    ) -> list[StoredEvent]:
        def lost_race(_: PersistenceError) -> WrongExpectedVersionError:
            # A concurrent append passed the same check first; the database refused ours.
            return WrongExpectedVersionError(stream_id, expected_version, None)

        constraints = {UQ_STREAM_VERSION: lost_race}
        engine = self._own_engine() if self._source.owns_transaction(uow) else None
        if engine is not None and self._log_for(engine.dialect.name).autocommit_appends:
            # Outside any unit of work the append is one statement, atomic on its own: run it
            # in autocommit on a bare connection (no ORM session, no BEGIN/COMMIT round trips).
            with translating(constraints=constraints):
                log = self._log_for(engine.dialect.name)
                drawn = await log.insert_autocommit(engine, stream_id, batch, version_range, ids)
                if drawn is None:
                    async with engine.connect() as bare:
                        conn = await bare.execution_options(isolation_level="AUTOCOMMIT")
                        return await self._refused(conn, stream_id, batch, expected_version)
            return [e.positioned(v, p) for e, (p, v) in zip(batch, drawn, strict=True)]
        async with self._source.session(uow, constraints=constraints) as session:
            log = self._log(session)
            conn = await session.connection()
            drawn = await log.insert_batch(
                conn,
                stream_id,
                batch,
                version_range,
                ids,
                guarded=not self._source.owns_transaction(uow),
            )
            if drawn is None:
                return await self._refused(conn, stream_id, batch, expected_version)
        return [e.positioned(v, p) for e, (p, v) in zip(batch, drawn, strict=True)]

    async def _refused(
        self,
        conn: AsyncConnection,
        stream_id: str,
        batch: list[StoredEvent],
        expected: ExpectedVersion,
    ) -> list[StoredEvent]:
        """Say why a precondition failed, or return the stored batch of an idempotent retry."""
        t = events_table.c
        ids = [e.event_id for e in batch]
        stored = [
            _row_to_event(r)
            for r in await conn.execute(
                select(*event_text_columns()).where(t.event_id.in_(ids)).order_by(t.position)
            )
        ]
        if len(stored) == len(batch) and all(s.aggregate_id == stream_id for s in stored):
            by_id = {s.event_id: s for s in stored}
            return [by_id[i] for i in ids]
        if stored:
            raise UniqueViolationError(
                f"stream {stream_id!r}: events {[s.event_id for s in stored]} are already "
                "stored (a retry must resend the whole batch)",
                constraint=UQ_EVENT_ID,
            )
        tomb = stream_tombstones_table.c
        if (await conn.execute(select(tomb.stream_id).where(tomb.stream_id == stream_id))).first():
            raise NotFoundError(f"stream {stream_id!r} is deleted", kind="stream", key=stream_id)
        actual = await self.get_version(stream_id, _conn=conn)
        check_expected_version(stream_id, expected, actual)
        first = batch[0].version
        raise WrongExpectedVersionError(
            stream_id, expected if first is None else first - 1, actual or None
        )

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
        tomb = stream_tombstones_table.c
        t = events_table.c
        async with self._source.session(uow) as session:
            conn = await session.connection()
            last = await self.get_version(stream_id, _conn=conn)
            existing = (
                await conn.execute(select(tomb.hard).where(tomb.stream_id == stream_id))
            ).first()
            if existing is None:
                await conn.execute(
                    insert(stream_tombstones_table).values(
                        stream_id=stream_id,
                        deleted_at=utc_now(),
                        last_version=last,
                        hard=int(hard),
                        reason=reason,
                    )
                )
            elif hard and not existing.hard:
                await conn.execute(
                    update(stream_tombstones_table)
                    .where(tomb.stream_id == stream_id)
                    .values(hard=1)
                )
            if hard:
                await conn.execute(delete(events_table).where(t.stream_id == stream_id))

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
        rows = await self._stream_rows(aggregate_id, from_version, to_version, uow)
        return [_row_to_event(r) for r in rows]

    async def load_events(
        self,
        aggregate_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        uow: Any = None,
    ) -> list[DomainEvent]:
        """Like :meth:`get_events`, as registered ``DomainEvent`` classes (upcast first)."""
        rows = await self._stream_rows(aggregate_id, from_version, to_version, uow)
        # Straight from the row to the typed event: the freshly decoded payload dict becomes
        # the field dict (no StoredEvent, envelope or merged dict per event), one loop in the
        # registry (see ``EventTypeRegistry.hydrate_rows``).
        return self.registry.hydrate_rows(rows, _TEXT_ROW_LAYOUT, json_loads)

    async def _stream_rows(
        self,
        aggregate_id: str,
        from_version: int | None,
        to_version: int | None,
        uow: Any,
    ) -> Sequence[Sequence[Any]]:
        params = {
            "stream_id": aggregate_id,
            "from_version": from_version if from_version is not None else -_MAX_VERSION,
            "to_version": to_version if to_version is not None else _MAX_VERSION,
        }
        return await self._read(_STREAM_READ, params, uow)

    def to_domain_event(self, stored: StoredEvent) -> DomainEvent:
        """The typed event of a stored one, through the registry (with upcasting)."""
        return self.registry.hydrate(
            stored.event_type,
            stored.payload,
            schema_version=stored.schema_version,
            envelope=stored.envelope(),
        )

    async def get_version(
        self, aggregate_id: str, *, uow: Any = None, _conn: AsyncConnection | None = None
    ) -> int:
        """The version of the stream's last event (0 when the stream has none)."""
        params = {"stream_id": aggregate_id}
        if _conn is not None:
            return int((await _conn.execute(_STREAM_VERSION, params)).scalar_one())
        return int((await self._read(_STREAM_VERSION, params, uow))[0][0])

    async def stream_exists(self, aggregate_id: str, *, uow: Any = None) -> bool:
        """Whether the stream has events and is not deleted."""
        return bool((await self._read(_STREAM_EXISTS, {"stream_id": aggregate_id}, uow))[0][0])

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
        if limit < 1:
            raise InvalidValueError("limit must be at least 1")
        flt = GlobalFilter(
            event_types=tuple(event_types) if event_types is not None else None,
            aggregate_types=tuple(aggregate_types) if aggregate_types is not None else None,
            tenant_id=tenant_id,
        )
        start = Cursor.decode(after)
        async with self._reading(uow) as (conn, log):
            rows = (await conn.execute(log.page_query(start, limit, flt))).all()
        events, cursor = page_cursor(rows, limit, flt, log.cursor_of)
        return [_row_to_event(r) for r in events], cursor.encode() if cursor else after

    async def subscribe(
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

        Waits for a NOTIFY (PostgreSQL + asyncpg, when ``listen``) or ``poll_interval``. With
        both switched off it stops when it has caught up. ``on_cursor(cursor)`` is called
        after each page (e.g. to persist a checkpoint)::

            async for event in store.subscribe(after=checkpoint):
                await handle(event)

        To leave the loop early, wrap it in ``contextlib.aclosing(store.subscribe(...))`` so
        the LISTEN connection is released at once rather than when the generator is collected.
        """
        types = tuple(event_types) if event_types is not None else None
        categories = tuple(aggregate_types) if aggregate_types is not None else None
        engine = await self._engine_for_listen() if self.listen else None
        cursor = after
        async with contextlib.AsyncExitStack() as stack:
            woken: asyncio.Event | None = None
            if engine is not None:
                async with self._source.session() as session:
                    log = self._log(session)
                woken = await stack.enter_async_context(log.listen(engine))
            recheck = 0.0  # > 0 while a wake-up has not produced its events yet
            while True:
                if woken is not None:
                    woken.clear()
                page, cursor = await self.read_all(
                    after=cursor,
                    limit=batch_size,
                    event_types=types,
                    aggregate_types=categories,
                    tenant_id=tenant_id,
                )
                for event in page:
                    yield event
                if on_cursor is not None and page:
                    result = on_cursor(cursor)
                    if asyncio.iscoroutine(result):
                        await result
                if len(page) == batch_size:
                    continue
                if woken is None and self.poll_interval is None:
                    return
                if woken is None:
                    await asyncio.sleep(self.poll_interval or 0)
                    continue
                timeout = self.poll_interval
                if page:
                    recheck = 0.0
                elif recheck:
                    # A notification said something committed but the page was empty: it is
                    # held back behind the horizon. Look again soon (backing off) rather than
                    # wait for a wake-up that may not come.
                    timeout = min(recheck, timeout or recheck)
                    recheck = min(recheck * 2, 1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout)
                    if not recheck:
                        recheck = 0.02

    async def horizon_lag(self, *, uow: Any = None) -> HorizonStatus:
        """How far committed events are held back from global readers (for health checks).

        On PostgreSQL: the horizon transaction id, the number of stored events at or above it
        and the age / pid of the oldest transaction holding it back. Always zero on SQLite.
        """
        async with self._source.session(uow) as session:
            return await self._log(session).horizon(session)
