"""Inbox port: the idempotent-consumer record that makes a consumer's effects exactly-once."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

from cqrs_ddd_core.errors import DataError
from cqrs_ddd_core.ports.unit_of_work import IUnitOfWork

__all__ = ["MAX_INBOX_KEY_LENGTH", "IInbox", "check_inbox_key"]

#: Longest consumer name or message id an inbox stores (a ``VARCHAR(255)`` in SQL).
MAX_INBOX_KEY_LENGTH = 255


def check_inbox_key(consumer: str, message_id: str) -> None:
    """Raise ``DataError`` unless both parts are non-empty strings of at most 255 characters.

    Every adapter applies the same rule, so a message refused by one is refused by all.
    """
    for name, value in (("consumer", consumer), ("message_id", message_id)):
        if not isinstance(value, str) or not value:
            raise DataError(f"inbox {name} must be a non-empty string, got {value!r}")
        if len(value) > MAX_INBOX_KEY_LENGTH:
            raise DataError(
                f"inbox {name} is {len(value)} characters long; at most "
                f"{MAX_INBOX_KEY_LENGTH} are stored"
            )


@runtime_checkable
class IInbox(Protocol):
    """Which messages each consumer has handled.

    Delivery from a broker is at-least-once (an outbox relay re-publishes a batch whose ack it
    lost; a broker redelivers what a consumer did not acknowledge). A consumer closes the gap
    by calling :meth:`record` in the *same unit of work* as the message's effects: the first
    time the call returns ``True`` and the handler runs; once that unit of work committed, the
    same ``(consumer, message_id)`` returns ``False`` and the handler is skipped. A rolled-back
    unit of work records nothing, so the message is handled again on redelivery.

    Example::

        async with uow:
            if await inbox.record("billing", message.message_id, uow=uow):
                await handle(message, uow)      # the effects
                await uow.commit()              # effects and the record, atomically
        await ack(message)                      # only after the commit
    """

    async def record(
        self, consumer: str, message_id: str, *, uow: IUnitOfWork | None = None
    ) -> bool:
        """Record ``message_id`` for ``consumer`` in the unit of work (``uow=`` or ambient).

        Returns ``True`` when the message is new to this consumer (run the handler), ``False``
        when it was recorded before, in a committed unit of work or earlier in this one (skip
        it). Raises ``UnitOfWorkError`` outside a unit of work: a record committed apart from
        the effects proves nothing. A unit of work that raced another one recording the same
        id either waits for it and returns ``False`` or fails at commit with a
        ``ConcurrencyError``; at most one of them commits the record.
        """
        ...

    async def has_seen(self, consumer: str, message_id: str) -> bool:
        """Whether ``message_id`` is recorded for ``consumer``: committed, or earlier in the
        ambient unit of work."""
        ...

    async def purge(self, older_than: timedelta, *, consumer: str | None = None) -> int:
        """Forget records older than ``older_than`` (of one consumer, or all); returns the count.

        Keep records longer than any redelivery can arrive: a message whose record was purged
        is handled again.
        """
        ...
