"""``SQLAlchemyOutboxStorage``: the transactional outbox on the durable-queue primitive.

Messages are written in the business transaction (``save_messages(..., uow=uow)``, or as an
``EventSink`` of the unit of work) and published later by a relay. Claiming goes through
:class:`~cqrs_ddd_persistence_sqlalchemy.queue.DurableQueue`, so any number of relays — or
copies of the seed's ``get_pending`` → publish → ``mark_published`` loop — never publish the same
message twice in a clean run, and a crashed publisher's messages come back after the lease.
See ``OUTBOX.md`` next to this file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select

from cqrs_ddd_core.domain.events import DomainEvent, utc_now
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.queue import (
    DONE,
    PENDING,
    Backoff,
    Claim,
    DurableQueue,
    Outcome,
    QueueStats,
)
from cqrs_ddd_persistence_sqlalchemy.queue.durable import _renamed
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table

__all__ = ["DEFAULT_CHANNEL", "OutboxClaim", "SQLAlchemyOutboxStorage"]

logger = logging.getLogger(__name__)

_MAX_REMEMBERED = 10_000

#: The LISTEN/NOTIFY channel ``save_messages`` notifies on PostgreSQL.
DEFAULT_CHANNEL = "cqrs_ddd_outbox"


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    """A leased outbox message: the message and the queue claim (id + fencing token)."""

    message: OutboxMessage
    claim: Claim

    @property
    def message_id(self) -> str:
        return self.message.message_id


class SQLAlchemyOutboxStorage:
    """Transactional outbox (seed API + claim API for relays).

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
        bind: Any = None,
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
        self.queue = DurableQueue(
            table,
            bind,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            backoff=backoff,
            key_column="partition_key" if ordered_by_key else None,
            clock=clock,
        )
        engine = self.queue.binding.engine
        if notify and engine is not None:
            # Refused here, not as a database error at the first save (63 bytes on PostgreSQL).
            dialect_for(engine).notify_statement(channel)
        # Claims handed out by ``get_pending``: ``mark_*`` present their fencing tokens.
        self._leases: dict[str, Claim] = {}

    # -- writing -------------------------------------------------------------------------------
    async def save_messages(self, messages: Sequence[OutboxMessage], *, uow: Any = None) -> None:
        """Insert messages in the caller's transaction (``uow=`` or ambient), else in a short
        transaction of their own. A ``message_id`` already in the outbox is skipped."""
        if not messages:
            return
        now = self.queue.clock()
        rows = [_to_row(m, now) for m in messages]
        async with self.queue.binding.transaction(uow) as executor:
            dialect = dialect_for(executor.dialect)
            await executor.execute(dialect.insert_ignore(self.table, ["message_id"]), rows)
            notify = dialect.notify_statement(self.channel) if self.notify else None
            if notify is not None:
                await executor.execute(notify)

    async def write_events(self, events: Sequence[DomainEvent], *, uow: Any) -> None:
        """``EventSink`` hook: the unit of work hands over its aggregates' events at commit."""
        await self.save_messages(
            [OutboxMessage.from_domain_event(e, tenant_id=_tenant_of(e.metadata)) for e in events],
            uow=uow,
        )

    # -- the seed's API ----------------------------------------------------------------------
    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        """Claim up to ``limit`` due messages and lease them to this caller (concurrent callers
        never get the same message; an unacknowledged message comes back after the lease)."""
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
        """Mark messages published (fenced by the lease ``get_pending`` took, when known)."""
        claims = await self._claims_for(message_ids)
        outcome = await self.queue.complete(claims)
        if outcome.lost:
            logger.warning(
                "outbox: %d message(s) were marked published after their lease was taken over; "
                "they may be published again (at-least-once)",
                len(outcome.lost),
            )

    async def mark_failed(self, message_id: str, error: str) -> None:
        """Record a failed attempt: due again after the backoff, dead after ``max_attempts``."""
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

    # -- the claim API (relays): the queue vocabulary ------------------------------------------
    async def claim(
        self, limit: int = 100, *, lease_seconds: float | None = None
    ) -> list[OutboxClaim]:
        """Lease up to ``limit`` due messages in one statement, oldest first."""
        claims = await self.queue.claim(limit, lease_seconds=lease_seconds)
        return [OutboxClaim(_to_message(c.values), c) for c in claims]

    async def complete(self, claimed: Sequence[OutboxClaim]) -> Outcome:
        """Mark published (only where the lease is still ours; see ``Outcome.lost``)."""
        return await self.queue.complete([c.claim for c in claimed])

    async def fail(
        self, claimed: Sequence[OutboxClaim], *, error: str, delay: float | None = None
    ) -> Outcome:
        """Retry later (backoff) or dead-letter after ``max_attempts``."""
        return await self.queue.fail([c.claim for c in claimed], error=error, delay=delay)

    async def release(self, claimed: Sequence[OutboxClaim]) -> Outcome:
        """Give messages back unpublished, without counting an attempt (shutdown)."""
        return await self.queue.release([c.claim for c in claimed])

    async def heartbeat(
        self, claimed: Sequence[OutboxClaim], *, lease_seconds: float | None = None
    ) -> Outcome:
        """Extend the lease of messages still being published."""
        return await self.queue.heartbeat([c.claim for c in claimed], lease_seconds=lease_seconds)

    # -- administration ----------------------------------------------------------------------
    async def dead_letters(self, limit: int = 100) -> list[OutboxMessage]:
        """Messages that exhausted their attempts, oldest first."""
        return [_to_message(r) for r in await self.queue.dead_letters(limit)]

    async def requeue(self, message_ids: Iterable[str] | None = None) -> int:
        """Bring dead messages (all, or the given ids) back; attempts start again from zero."""
        where = None if message_ids is None else self.table.c.message_id.in_(list(message_ids))
        return await self.queue.requeue(where=where)

    async def purge(self, older_than: timedelta | float) -> int:
        """Delete published messages older than the retention (``timedelta`` or seconds)."""
        if not isinstance(older_than, timedelta):
            older_than = timedelta(seconds=older_than)
        return await self.queue.purge(older_than, statuses=(DONE,))

    async def stats(self) -> QueueStats:
        """Pending / leased / scheduled / done / dead counts and the lag of the oldest due one."""
        return await self.queue.stats()

    # -- the earlier names (deprecated) --------------------------------------------------------
    async def claim_batch(
        self, limit: int = 100, *, lease_seconds: float | None = None
    ) -> list[OutboxClaim]:
        """Deprecated: :meth:`claim`."""
        _renamed("SQLAlchemyOutboxStorage.claim_batch", "claim")
        return await self.claim(limit, lease_seconds=lease_seconds)

    async def ack(self, claimed: Sequence[OutboxClaim]) -> Outcome:
        """Deprecated: :meth:`complete`."""
        _renamed("SQLAlchemyOutboxStorage.ack", "complete")
        return await self.complete(claimed)

    async def nack(
        self, claimed: Sequence[OutboxClaim], *, error: str, delay: float | None = None
    ) -> Outcome:
        """Deprecated: :meth:`fail`."""
        _renamed("SQLAlchemyOutboxStorage.nack", "fail")
        return await self.fail(claimed, error=error, delay=delay)

    async def purge_published(self, older_than: timedelta | float) -> int:
        """Deprecated: :meth:`purge`."""
        _renamed("SQLAlchemyOutboxStorage.purge_published", "purge")
        return await self.purge(older_than)


def _tenant_of(metadata: Mapping[str, Any]) -> str | None:
    tenant = metadata.get("tenant_id")
    return None if tenant is None else str(tenant)


def _to_row(m: OutboxMessage, now: datetime) -> dict[str, Any]:
    if m.created_at.tzinfo is None:
        raise ConfigurationError(f"OutboxMessage {m.message_id}: created_at must be aware")
    return {
        "available_at": now,
        "message_id": m.message_id,
        "event_type": m.event_type,
        "payload": m.payload,
        "metadata": m.metadata,
        "created_at": m.created_at,
        "correlation_id": m.correlation_id,
        "causation_id": m.causation_id,
        "tenant_id": m.tenant_id,
        "partition_key": m.partition_key,
    }


def _to_message(row: Mapping[str, Any]) -> OutboxMessage:
    return OutboxMessage(
        message_id=row["message_id"],
        event_type=row["event_type"],
        payload=row["payload"] or {},
        metadata=row["metadata"] or {},
        created_at=row["created_at"],
        published_at=row["finished_at"] if row["status"] == DONE else None,
        error=row["last_error"],
        retry_count=row["attempts"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        tenant_id=row["tenant_id"],
        partition_key=row["partition_key"],
    )
