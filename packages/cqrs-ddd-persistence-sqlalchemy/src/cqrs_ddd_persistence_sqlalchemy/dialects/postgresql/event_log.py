"""PostgreSQL half of the event store: one-statement batch append, ``xid8`` horizon, NOTIFY.

Append is a single ``INSERT … SELECT … FROM jsonb_to_recordset(…) … RETURNING`` whose
``WHERE`` carries the preconditions (stream version within the expected range, no event id
already stored, stream not tombstoned). When a precondition fails the ``SELECT`` yields no row,
so no position is drawn: a loser never burns numbers. Concurrent appenders that both pass the
check meet at ``UNIQUE(stream_id, version)``.

Global reads only return rows whose appending transaction is below the horizon
``pg_snapshot_xmin(pg_current_snapshot())`` — every transaction below it has ended, so nothing
can still appear behind the cursor — and page by ``(txid, position)``. Paging by position alone
would still skip: a transaction that drew its position early may commit after a later one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import DDLElement

from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import (
    Cursor,
    GlobalFilter,
    HorizonStatus,
    Ordering,
    not_tombstoned,
    select_page,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.activity import horizon_holder
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.notify import NotifyCoalescer
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.queue import NOTIFY
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner, kept
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps
from cqrs_ddd_persistence_sqlalchemy.tables.events import Xid8, current_xact_id, events_table

__all__ = ["DEFAULT_CHANNEL", "PostgresEventLog"]

#: LISTEN/NOTIFY channel of the event store (a wake-up hint only; payload is empty).
DEFAULT_CHANNEL = "cqrs_events"


class _LockExclusive(DDLElement):
    """``LOCK TABLE <table> IN EXCLUSIVE MODE`` (the identifier comes from the Table object)."""

    inherit_cache = False

    def __init__(self, table: Any) -> None:
        self.table = table


@compiles(_LockExclusive, "postgresql")
def _compile_lock(element: _LockExclusive, compiler: Any, **kw: Any) -> str:
    return f"LOCK TABLE {compiler.preparer.format_table(element.table)} IN EXCLUSIVE MODE"


def _insert_statement(*, guarded: bool) -> Any:
    t = events_table
    # The batch travels as one JSON array of records: asyncpg encodes ten parallel arrays
    # element by element (~2 µs of client CPU per event), a JSON text is one orjson call, and
    # PostgreSQL parses it about as fast as it unpacks the arrays (jsonb: parsed once; ``json``
    # would parse each payload a second time into its jsonb column). ``n`` is the 1-based index
    # of the event in the batch (WITH ORDINALITY cannot take a column definition list).
    u = (
        func.jsonb_to_recordset(cast(bindparam("events", type_=Text), JSONB))
        .table_valued(
            column("n", BigInteger),
            column("event_id", String),
            column("event_type", String),
            column("aggregate_type", String),
            column("schema_version", Integer),
            column("payload", JSONB),
            column("metadata", JSONB),
            column("occurred_at", TIMESTAMP(timezone=True)),
            column("correlation_id", String),
            column("causation_id", String),
            column("tenant_id", String),
        )
        .render_derived(name="u", with_types=True)
    )
    stream = bindparam("stream_id", type_=String)
    base = (
        select(func.coalesce(func.max(t.c.version), 0))
        .where(t.c.stream_id == stream)
        .scalar_subquery()
    )
    # The ordering key: this transaction's id, but never below the key of the stream's last
    # event. A transaction whose xid is older than the one that appended the previous version
    # (it wrote something else first) would otherwise sort that later version before the
    # earlier one in the global log. Still commit-safe: while we run, the horizon is at most
    # our xid <= this key, so readers cannot have passed it.
    last_key = (
        select(t.c.txid)
        .where(t.c.stream_id == stream)
        .order_by(t.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    # Computed once per statement (an InitPlan), not once per appended row.
    key = select(func.greatest(current_xact_id(), last_key, type_=Xid8())).scalar_subquery()

    def shared(name: str, type_: Any) -> Any:
        # A value every event of the batch shares travels once, as a parameter, and its key
        # is left out of the records: PostgreSQL converts each record field from JSON text
        # (~150 us of server time per 100 events for these columns, measured). A field that
        # varies is in the records and its parameter is NULL.
        return func.coalesce(u.c[name], bindparam(f"shared_{name}", type_=type_), type_=type_)

    source = select(
        u.c.event_id,
        stream,
        base + u.c.n,
        shared("event_type", String),
        shared("aggregate_type", String),
        shared("schema_version", Integer),
        u.c.payload,
        func.coalesce(
            u.c.metadata, cast(bindparam("shared_metadata", type_=Text), JSONB), type_=JSONB
        ),
        u.c.occurred_at,
        shared("correlation_id", String),
        shared("causation_id", String),
        shared("tenant_id", String),
        key,
    ).where(
        base.between(bindparam("lo", type_=BigInteger), bindparam("hi", type_=BigInteger)),
        # Only the first id: a retried batch repeats it, and an equality probe on the unique
        # index stays cheap whatever the statistics say (``= ANY(array)`` may seq-scan).
        ~exists().where(t.c.event_id == bindparam("first_event_id", type_=String)),
        not_tombstoned(stream),
        # NOTIFY rides in the statement when the ``notify`` parameter is true: no extra round
        # trip, one ``pg_notify`` call (an InitPlan, evaluated once), delivered on commit only
        # (never for a rolled-back append; a refused one may send a harmless extra wake-up).
        # A parameter rather than a second statement shape: every append reuses one prepared
        # statement, which PostgreSQL plans generically after five runs — appends that
        # notify only now and then stayed in the replanned-every-time phase, measured as a
        # quarter of the throughput of 8 writers.
        func.coalesce(
            select(
                case(
                    (
                        bindparam("notify", type_=Boolean),
                        cast(func.pg_notify(bindparam("channel", type_=String), ""), Text),
                    )
                )
            ).scalar_subquery(),
            "",
        )
        == "",
    )
    names = [
        "event_id",
        "stream_id",
        "version",
        "event_type",
        "aggregate_type",
        "schema_version",
        "payload",
        "metadata",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "tenant_id",
        "txid",
    ]
    plain = pg_insert(t).from_select(names, source)
    if guarded:
        # In the caller's unit of work: a concurrent append that passed the same checks first
        # makes our rows conflict on ``(stream_id, version)`` (or ``event_id``, for a concurrent
        # retry of the same batch). DO NOTHING (after waiting for it) instead of an error keeps
        # the caller's transaction usable; ``insert_batch`` undoes a partly inserted batch and
        # the store says why. Speculative insertion costs ~20% of a 100-event append, so a
        # transaction of the store's own (nothing else to keep usable) goes without it.
        plain = plain.on_conflict_do_nothing()
    return plain.returning(t.c.position, t.c.version)


#: Record fields sent once per batch when every event has the same value.
_SHARABLE = tuple(
    (name, attrgetter(name))
    for name in (
        "event_type",
        "aggregate_type",
        "schema_version",
        "metadata",
        "correlation_id",
        "causation_id",
        "tenant_id",
    )
)

_SHARABLE_NAMES = tuple(name for name, _ in _SHARABLE)
_SHARABLE_ALL = attrgetter(*_SHARABLE_NAMES)
_SHARED_PARAM = {name: f"shared_{name}" for name, _ in _SHARABLE}

#: guarded -> statement
_INSERTS = {guarded: kept(_insert_statement(guarded=guarded)) for guarded in (False, True)}
_LOCK = _LockExclusive(events_table)
_HORIZON = func.pg_snapshot_xmin(func.pg_current_snapshot())
_HORIZON_STATUS = select(
    cast(_HORIZON, Text),
    select(func.count()).where(events_table.c.txid >= _HORIZON).scalar_subquery(),
)


def _utc(naive: datetime) -> datetime:
    return naive.replace(tzinfo=UTC)


class PostgresEventLog:
    """Event log SQL for PostgreSQL (any async driver)."""

    def __init__(
        self,
        *,
        ordering: Ordering = Ordering.COMMIT_SAFE,
        channel: str | None = DEFAULT_CHANNEL,
        notify: bool = True,
    ) -> None:
        self.ordering = ordering
        self.channel = channel
        self.notify = notify and channel is not None
        # LOCK TABLE + INSERT are two statements: they need a transaction.
        self.single_statement_append = ordering is Ordering.COMMIT_SAFE
        # Pages are ordered by (txid, position) unless positions are commit-ordered.
        self.cursor_width = 1 if ordering is Ordering.LOCK_TABLE else 2
        # Overlapping autocommit appends share their notifications (see notify.py).
        self._notifier = NotifyCoalescer(channel) if self.notify and channel else None

    def _params(
        self,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
        *,
        notify: bool,
    ) -> dict[str, Any]:
        # Fields the whole batch shares (the usual case for all but occurred_at) go once, as
        # parameters (see ``_insert_statement``); the others per record.
        shared: dict[str, Any] = {}
        varying: list[str] = []
        heads = _SHARABLE_ALL(rows[0])
        if len(rows) == 1 or list(map(_SHARABLE_ALL, rows)).count(heads) == len(rows):
            # All shared (the usual batch), found in one pass over the rows.
            shared = dict(zip(_SHARABLE_NAMES, heads, strict=True))
        else:
            for (name, get), head in zip(_SHARABLE, heads, strict=True):
                values = list(map(get, rows))
                if values.count(head) == len(values):
                    shared[name] = head
                else:
                    varying.append(name)
        # A naive time is UTC (as asyncpg and UTCDateTime read it), never the session's zone.
        records = [
            {
                "n": n,
                "event_id": r.event_id,
                "payload": r.payload,
                "occurred_at": at if (at := r.occurred_at).tzinfo is not None else _utc(at),
            }
            for n, r in enumerate(rows, 1)
        ]
        if varying:
            for record, r in zip(records, rows, strict=True):
                # Absent keys are NULL (and keep json_dumps off its NaN walk, which only a
                # ``null`` in the text triggers).
                for name in varying:
                    value = getattr(r, name)
                    if value is not None:
                        record[name] = value
        params: dict[str, Any] = {
            "stream_id": stream_id,
            "lo": version_range[0],
            "hi": version_range[1],
            "first_event_id": ids[0],
            "events": json_dumps(records),
        }
        for name, _ in _SHARABLE:
            params[_SHARED_PARAM[name]] = shared.get(name)
        metadata = params["shared_metadata"]
        if metadata is not None:
            params["shared_metadata"] = json_dumps(metadata) if metadata else "{}"
        params["notify"] = notify
        params["channel"] = self.channel if notify else None
        return params

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
        notifier = self._notifier
        if not autocommit or notifier is None:
            # In a transaction: the NOTIFY rides in the statement, delivered at its commit.
            return await self._insert(
                runner, stream_id, rows, version_range, ids, guarded, self.notify
            )
        # Alone or carrying an owed notification: NOTIFY in the statement; otherwise the
        # coalescer sees it sent later (see notify.py).
        notify = notifier.begin()
        try:
            drawn = await self._insert(runner, stream_id, rows, version_range, ids, guarded, notify)
        except BaseException:
            notifier.abandon()
            raise
        # Refused (nothing appended, so no NOTIFY in the statement even if it carried one):
        # owes at most a harmless extra NOTIFY, sent if this call ends the burst.
        await notifier.end(
            lambda: runner.fetch(NOTIFY, {"channel": self.channel}),
            notified=drawn is not None and notify,
        )
        return drawn

    async def _insert(
        self,
        runner: StatementRunner,
        stream_id: str,
        rows: Sequence[StoredEvent],
        version_range: tuple[int, int],
        ids: Sequence[str],
        guarded: bool,
        notify: bool,
    ) -> list[tuple[int, int]] | None:
        if self.ordering is Ordering.LOCK_TABLE:
            await runner.execute(_LOCK)
        params = self._params(stream_id, rows, version_range, ids, notify=notify)
        records = await runner.fetch(_INSERTS[guarded], params)
        drawn: list[tuple[int, int]] = list(map(tuple, records))  # (position, version): ints
        if 0 < len(drawn) < len(rows):
            # Lost a race part-way (the winner appended fewer events): take ours back out so
            # the stream has no gap; the transaction stays usable.
            t = events_table.c
            await runner.execute(delete(events_table).where(t.position.in_([p for p, _ in drawn])))
            return None
        if not drawn:
            return None
        drawn.sort(key=_version)
        return drawn

    def page_query(self, after: Cursor, limit: int, flt: GlobalFilter) -> Select[Any]:
        t = events_table.c
        if self.ordering is Ordering.LOCK_TABLE:
            # Positions are handed out in commit order: a position cursor cannot skip.
            return select_page(t.position > after.position, [t.position], [], limit, flt)
        return select_page(
            (t.txid < _HORIZON)
            & (
                tuple_(t.txid, t.position)
                > tuple_(bindparam("after_txid", after.txid, type_=Xid8()), after.position)
            ),
            [t.txid, t.position],
            [t.txid],
            limit,
            flt,
        )

    async def horizon(self, runner: StatementRunner) -> HorizonStatus:
        horizon_text, invisible = (await runner.fetch(_HORIZON_STATUS))[0]
        holder = await horizon_holder(runner)
        return HorizonStatus(
            horizon_txid=int(horizon_text) if horizon_text is not None else None,
            invisible_events=int(invisible),
            oldest_pid=holder.pid if holder else None,
            oldest_xact_started=holder.xact_started if holder else None,
            oldest_xact_age_s=holder.xact_age_s if holder else None,
        )


#: The sort key of drawn ``(position, version)`` pairs: the version (C-level, per event).
_version = itemgetter(1)
