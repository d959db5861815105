"""``SQLAlchemyOutboxStorage``: the transactional outbox on the durable-queue primitive.

Messages are written in the business transaction (``save_messages(..., uow=uow)``, or as an
``EventSink`` of the unit of work) and published later by a relay. Claiming goes through
:class:`~cqrs_ddd_persistence_sqlalchemy.queue.DurableQueue`, so any number of relays — or
copies of the seed's ``get_pending`` → publish → ``mark_published`` loop — never publish the same
message twice in a clean run, and a crashed publisher's messages come back after the lease.

The verbs are the durable queue's (``claim / complete / fail / release / heartbeat /
dead_letters / requeue / purge / stats``, see ``queue/README.md``); the seed's
``save_messages / get_pending / mark_published / mark_failed`` are their documented
equivalents for callers that hold message ids instead of claims. See ``core/OUTBOX.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Table, bindparam, select

from cqrs_ddd_core.domain.events import DomainEvent, utc_now
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import (
    db_span,
    trace_metadata,
    tracer_for,
)
from cqrs_ddd_persistence_sqlalchemy.outbox.messages import (
    OutboxClaim,
    message_of_event,
    to_message,
    to_row,
)
from cqrs_ddd_persistence_sqlalchemy.queue import (
    DONE,
    PENDING,
    Backoff,
    Claim,
    DurableQueue,
    Outcome,
    QueueStats,
)
from cqrs_ddd_persistence_sqlalchemy.queue.base import check_queue
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["DEFAULT_CHANNEL", "OutboxClaim", "SQLAlchemyOutboxStorage"]

logger = logging.getLogger(__name__)

_MAX_REMEMBERED = 10_000

#: The LISTEN/NOTIFY channel ``save_messages`` notifies on PostgreSQL.
DEFAULT_CHANNEL = "cqrs_ddd_outbox"


class SQLAlchemyOutboxStorage:
    """Transactional outbox (seed API + the queue's verbs for relays).

    Args:
        bind: engine, session factory, session or unit of work (optional when every call runs
            in a unit of work; ``get_pending`` and relays need one to open their own
            transactions).
        lease_seconds: how long a claimed message is exclusive to its publisher.
        max_attempts: failed attempts after which a message is dead-lettered.
        backoff: retry delays (exponential with jitter).
        ordered_by_key: only the oldest unpublished message of each ``partition_key`` (the
            aggregate id for domain events) is claimable, so every key is published in order.
        notify: on PostgreSQL, ``save_messages`` sends ``pg_notify(channel)`` in the same
            transaction (relays wake at commit instead of at the next poll).
        channel: the NOTIFY channel; on PostgreSQL at most 63 bytes (``ConfigurationError``
            otherwise: here when built on an engine, else at the first save).
        table: an outbox table of your own (same columns as ``outbox_table``).

    Example::

        outbox = SQLAlchemyOutboxStorage(engine)
        uow = SQLAlchemyUnitOfWork(session_factory, event_sinks=[outbox])  # one line

        async with uow:
            await repo.add(order, uow=uow)   # order's domain events go to the outbox
            await uow.commit()

        for message in await outbox.get_pending(limit=100):   # leased to this caller
            await producer.send(message.event_type, message.payload)
            await outbox.mark_published([message.message_id])
    """

    def __init__(
        self,
        bind: Bind = None,
        *,
        lease_seconds: float = 30.0,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        ordered_by_key: bool = False,
        notify: bool = True,
        channel: str = DEFAULT_CHANNEL,
        table: Table = outbox_table,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.table = table
        self.channel = channel
        self.notify = notify
        self.ordered_by_key = ordered_by_key
        key_column = "partition_key" if ordered_by_key else None
        check_queue(table, key_column, lease_seconds, max_attempts)
        self.binding = Binding(bind, owner="SQLAlchemyOutboxStorage")
        self._clock = clock
        self._queue: DurableQueue | None = None
        self._queue_options: dict[str, Any] = {
            "lease_seconds": lease_seconds,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "key_column": key_column,
            "clock": clock,
        }
        engine = self.binding.engine
        if notify and engine is not None:
            # Refused here, not as a database error at the first save (63 bytes on PostgreSQL).
            dialect_for(engine).notify_statement(channel)
        # Claims handed out by ``get_pending``: ``mark_*`` present their fencing tokens.
        self._leases: dict[str, Claim] = {}

    @property
    def queue(self) -> DurableQueue:
        """The durable queue behind the verbs, on the outbox's bind. Made at its first use: a
        store built per request only to save messages (the seed's pattern) never needs one."""
        queue = self._queue
        if queue is None:
            queue = self._queue = DurableQueue(self.table, self.binding, **self._queue_options)
        return queue

    # -- writing -------------------------------------------------------------------------------
    async def save_messages(
        self, messages: Sequence[OutboxMessage], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> None:
        """Insert messages in the caller's transaction (``uow=`` or ambient), else in a short
        transaction of their own. A ``message_id`` already in the outbox is skipped."""
        if not messages:
            return
        now = self._clock()
        rows = [to_row(m, now) for m in messages]
        engine = self.binding.traced_engine(uow)
        if tracer_for(engine) is None:
            await self._insert(rows, uow)
            return
        with db_span(engine, "save", self.table.name):
            # The request's trace context travels with each message (the relay continues it).
            for row in rows:
                row["metadata"] = trace_metadata(row["metadata"]) or row["metadata"]
            await self._insert(rows, uow)

    async def _insert(self, rows: list[dict[str, Any]], uow: SQLAlchemyUnitOfWork | None) -> None:
        async with self.binding.transaction(uow) as executor:
            dialect = dialect_for(executor.dialect)
            insert = _insert_statement(self.table, dialect, tuple(rows[0]))
            await executor.execute(insert, rows if len(rows) > 1 else rows[0])
            notify = dialect.notify_statement(self.channel) if self.notify else None
            if notify is not None:
                await executor.execute(notify)

    async def write_events(
        self, events: Sequence[DomainEvent], *, uow: SQLAlchemyUnitOfWork
    ) -> None:
        """``EventSink`` hook: the unit of work hands over its aggregates' events at commit."""
        await self.save_messages([message_of_event(e) for e in events], uow=uow)

    # -- the seed's API: the verbs by message id ------------------------------------------------
    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        """:meth:`claim` by message id: lease up to ``limit`` due messages to this caller
        (concurrent callers never get the same message; an unacknowledged message comes back
        after the lease)."""
        claimed = await self.claim(limit)
        if len(self._leases) > _MAX_REMEMBERED:
            self._forget_stale_leases()
        for c in claimed:
            self._leases[c.message_id] = c.claim
        return [c.message for c in claimed]

    def _forget_stale_leases(self) -> None:
        # Leases never settled by this caller (it crashed mid-loop or lost interest): once long
        # expired they only grow the dict; settling without them falls back to the row's lease.
        horizon = self.queue.clock() - self.queue.lease
        for mid, claim in list(self._leases.items()):
            if claim.locked_until < horizon:
                del self._leases[mid]

    async def mark_published(self, message_ids: Sequence[str]) -> None:
        """:meth:`complete` by message id (fenced by the lease ``get_pending`` took, when
        known)."""
        claims = await self._claims_for(message_ids)
        outcome = await self.queue.complete(claims)
        if outcome.lost:
            logger.warning(
                "outbox: %d message(s) were marked published after their lease was taken over; "
                "they may be published again (at-least-once)",
                len(outcome.lost),
            )

    async def mark_failed(self, message_id: str, error: str) -> None:
        """:meth:`fail` by message id: due again after the backoff, dead after
        ``max_attempts``."""
        claims = await self._claims_for([message_id])
        await self.queue.fail(claims, error=error)

    async def _claims_for(self, message_ids: Sequence[str]) -> list[Claim]:
        claims: list[Claim] = []
        unknown: list[str] = []
        for mid in message_ids:
            claim = self._leases.pop(mid, None)
            if claim is None:
                unknown.append(mid)
            else:
                claims.append(claim)
        if unknown:
            # Not leased through this instance (another process, or a restart): act on the
            # row's current lease — the caller asserts it holds the message.
            t = self.table
            stmt = select(t.c.id, t.c.lease_token, t.c.attempts, t.c.locked_until).where(
                t.c.message_id.in_(unknown), t.c.status == PENDING
            )
            async with self.queue.transaction() as executor:
                rows = await executor.fetch(stmt)
            now = self.queue.clock()
            claims.extend(
                Claim(id=id_, token=token, attempts=attempts, locked_until=until or now, values={})
                for id_, token, attempts, until in rows
            )
        return claims

    # -- the queue's verbs (relays) -------------------------------------------------------------
    async def claim(
        self,
        limit: int = 100,
        *,
        lease_seconds: float | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[OutboxClaim]:
        """Lease up to ``limit`` due messages in one statement, oldest first."""
        with db_span(self.binding.engine, "claim", self.table.name):
            claims = await self.queue.claim(limit, lease_seconds=lease_seconds, uow=uow)
        return [OutboxClaim(to_message(c.values), c) for c in claims]

    async def complete(
        self, claimed: Sequence[OutboxClaim], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> Outcome:
        """Mark published (only where the lease is still ours; see ``Outcome.lost``)."""
        return await self.queue.complete([c.claim for c in claimed], uow=uow)

    async def fail(
        self,
        claimed: Sequence[OutboxClaim],
        *,
        error: str,
        delay: float | None = None,
        retry: bool = True,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Outcome:
        """Retry later (backoff, or ``delay`` seconds) or dead-letter after ``max_attempts``
        (at once with ``retry=False``)."""
        return await self.queue.fail(
            [c.claim for c in claimed], error=error, delay=delay, retry=retry, uow=uow
        )

    async def release(
        self, claimed: Sequence[OutboxClaim], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> Outcome:
        """Give messages back unpublished, without counting an attempt (shutdown)."""
        return await self.queue.release([c.claim for c in claimed], uow=uow)

    async def heartbeat(
        self,
        claimed: Sequence[OutboxClaim],
        *,
        lease_seconds: float | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Outcome:
        """Extend the lease of messages still being published."""
        return await self.queue.heartbeat(
            [c.claim for c in claimed], lease_seconds=lease_seconds, uow=uow
        )

    # -- administration ----------------------------------------------------------------------
    async def dead_letters(
        self, limit: int = 100, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> list[OutboxMessage]:
        """Messages that exhausted their attempts, oldest first."""
        return [to_message(r) for r in await self.queue.dead_letters(limit, uow=uow)]

    async def requeue(
        self, message_ids: Iterable[str] | None = None, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int:
        """Bring dead messages (all, or the given ids) back; attempts start again from zero."""
        where = None if message_ids is None else self.table.c.message_id.in_(list(message_ids))
        return await self.queue.requeue(where=where, uow=uow)

    async def purge(
        self, older_than: timedelta | float, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int:
        """Delete published messages older than the retention (``timedelta`` or seconds)."""
        if not isinstance(older_than, timedelta):
            older_than = timedelta(seconds=older_than)
        return await self.queue.purge(older_than, statuses=(DONE,), uow=uow)

    async def stats(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> QueueStats:
        """Pending / leased / scheduled / done / dead counts and the lag of the oldest due one."""
        return await self.queue.stats(uow=uow)

    # -- the earlier names (deprecated) --------------------------------------------------------
    async def claim_batch(
        self, limit: int = 100, *, lease_seconds: float | None = None
    ) -> list[OutboxClaim]:
        """Deprecated: :meth:`claim`."""
        renamed("SQLAlchemyOutboxStorage.claim_batch", "claim")
        return await self.claim(limit, lease_seconds=lease_seconds)

    async def ack(self, claimed: Sequence[OutboxClaim]) -> Outcome:
        """Deprecated: :meth:`complete`."""
        renamed("SQLAlchemyOutboxStorage.ack", "complete")
        return await self.complete(claimed)

    async def nack(
        self, claimed: Sequence[OutboxClaim], *, error: str, delay: float | None = None
    ) -> Outcome:
        """Deprecated: :meth:`fail`."""
        renamed("SQLAlchemyOutboxStorage.nack", "fail")
        return await self.fail(claimed, error=error, delay=delay)

    async def purge_published(self, older_than: timedelta | float) -> int:
        """Deprecated: :meth:`purge`."""
        renamed("SQLAlchemyOutboxStorage.purge_published", "purge")
        return await self.purge(older_than)


#: table -> (dialect support, row keys) -> the outbox ``INSERT``, built once and kept.
_INSERTS: WeakKeyDictionary[Table, dict[tuple[int, tuple[str, ...]], Any]] = WeakKeyDictionary()


def _insert_statement(table: Table, dialect: DialectSupport, keys: tuple[str, ...]) -> Any:
    """``INSERT … ON CONFLICT (message_id) DO NOTHING`` of rows with ``keys``, built once per
    table, dialect and set of keys and kept (the execution seam may prepare it: on asyncpg one
    ``executemany`` on the driver). The columns' scalar defaults (``status``, ``attempts``)
    are written as the statement's own values, so that nothing is computed per execution."""
    per_table = _INSERTS.setdefault(table, {})
    # Keyed by the dialect support's identity: one instance per supported database.
    stmt = per_table.get((id(dialect), keys))
    if stmt is None:
        values: dict[str, Any] = {k: bindparam(k, type_=table.c[k].type) for k in keys}
        for column in table.columns:
            default = column.default
            if column.key not in values and default is not None and default.is_scalar:
                values[column.key] = default.arg  # type: ignore[attr-defined]
        # ``inline()``: no RETURNING of the new ids (SQLAlchemy adds one by default); a save
        # reads nothing back.
        stmt = kept(dialect.insert_ignore(table, ["message_id"]).values(values).inline())
        per_table[(id(dialect), keys)] = stmt
    return stmt
