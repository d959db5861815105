"""``SQLAlchemyInbox``: the idempotent-consumer record, written in the handler's transaction.

A consumer calls :meth:`SQLAlchemyInbox.record` in the unit of work in which it applies a
message's effects. The call is one ``INSERT … ON CONFLICT DO NOTHING`` on the primary key
``(consumer, message_id)``: it returns ``True`` when the row was inserted (run the handler) and
``False`` when it already existed (skip it). The row commits or rolls back with the effects,
so a message is applied exactly once however often the broker delivers it.

Concurrent deliveries of one message (two consumers after a rebalance, a redelivery racing
the original) serialise on the key: on PostgreSQL the second insert waits for the first
transaction and then inserts nothing (or inserts, if the first rolled back); on SQLite the
write lock taken at ``BEGIN IMMEDIATE`` orders them. See ``core/OUTBOX.md`` ("Exactly-once
effects").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select

from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import UnitOfWorkError
from cqrs_ddd_core.ports.inbox import check_inbox_key
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.tables.inbox import inbox_table

__all__ = ["SQLAlchemyInbox"]


class SQLAlchemyInbox:
    """Inbox on :data:`~cqrs_ddd_persistence_sqlalchemy.tables.inbox.inbox_table`.

    Args:
        bind: engine, session factory, session or unit of work. :meth:`record` always joins
            the caller's unit of work (``uow=`` or ambient), so ``SQLAlchemyInbox()`` is enough
            for consumers; :meth:`has_seen` and :meth:`purge` outside a unit of work need a
            bind to open their own short transaction.
        table: an inbox table of your own (same columns as ``inbox_table``).
        clock: the time written as ``handled_at`` and used by :meth:`purge`.

    Example::

        inbox = SQLAlchemyInbox(engine)
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            if await inbox.record("billing", message_id, uow=uow):
                await charge(order_id, uow=uow)      # the handler's writes
                await uow.commit()                   # together with the record
        await inbox.purge(timedelta(days=7))         # from a periodic job
    """

    def __init__(
        self,
        bind: Bind = None,
        *,
        table: Table = inbox_table,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._source = Binding(bind, owner="SQLAlchemyInbox")
        self.table = table
        self._clock = clock
        c = table.c
        self._key = [c.consumer, c.message_id]

    async def record(self, consumer: str, message_id: str, *, uow: Any = None) -> bool:
        """Insert ``(consumer, message_id)`` in the unit of work; ``False`` if it was there.

        Raises ``UnitOfWorkError`` when no unit of work (or borrowed session) is joined: a
        record committed on its own would not be atomic with the handler's effects.
        """
        check_inbox_key(consumer, message_id)
        if self._source.owns_transaction(uow):
            raise UnitOfWorkError(
                "SQLAlchemyInbox.record() must run in the unit of work of the handler's "
                "effects: pass uow= or use 'async with uow:'"
            )
        async with self._source.transaction(uow) as executor:
            stmt = dialect_for(executor.dialect).insert_ignore(self.table, self._key)
            # RETURNING, not the row count: drivers do not all report one for an INSERT
            # (psycopg through SQLAlchemy says -1).
            inserted = await executor.fetch(
                stmt.values(
                    consumer=consumer, message_id=message_id, handled_at=self._clock()
                ).returning(self.table.c.message_id)
            )
        return bool(inserted)

    async def has_seen(self, consumer: str, message_id: str, *, uow: Any = None) -> bool:
        """Whether ``message_id`` is recorded for ``consumer`` (committed, or in ``uow``)."""
        c = self.table.c
        stmt = select(c.message_id).where(c.consumer == consumer, c.message_id == message_id)
        return bool(await self._source.fetch(stmt, None, uow))

    async def purge(
        self, older_than: timedelta, *, consumer: str | None = None, uow: Any = None
    ) -> int:
        """Delete records handled more than ``older_than`` ago; returns how many.

        Keep records longer than a message can be redelivered (the broker's retention, a
        relay's lease plus its backoff): a message whose record is gone is handled again.
        """
        c = self.table.c
        stmt = delete(self.table).where(c.handled_at < self._clock() - older_than)
        if consumer is not None:
            stmt = stmt.where(c.consumer == consumer)
        async with self._source.transaction(uow) as executor:
            return await executor.execute(stmt)
