"""In-memory inbox: the idempotent-consumer record, staged in an ``InMemoryUnitOfWork``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from cqrs_ddd_core.adapters.memory._uow import resolve
from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork, current_memory_uow
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConcurrencyError, UnitOfWorkError
from cqrs_ddd_core.ports.inbox import check_inbox_key

__all__ = ["InMemoryInbox"]

_Key = tuple[str, str]


class InMemoryInbox:
    """``IInbox`` with the semantics of the SQL adapter.

    A record joins the unit of work (explicit or ambient) and becomes visible at its commit. Two
    units of work recording the same id concurrently both get ``True``; the second to commit
    fails with ``ConcurrencyError`` (the SQL adapter makes it wait and return ``False``
    instead): either way only one of them commits the effects.

    Example::

        inbox = InMemoryInbox()
        async with InMemoryUnitOfWork() as uow:
            assert await inbox.record("billing", "m-1", uow=uow)
            await uow.commit()
        assert await inbox.has_seen("billing", "m-1")
    """

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._handled: dict[_Key, datetime] = {}
        # Records staged by a unit of work that has not finished yet: (its uow, its apply).
        self._staged: dict[_Key, list[tuple[InMemoryUnitOfWork, Callable[[], None]]]] = {}

    async def record(self, consumer: str, message_id: str, *, uow: Any = None) -> bool:
        check_inbox_key(consumer, message_id)
        joined = resolve(uow)
        if joined is None:
            raise UnitOfWorkError(
                "InMemoryInbox.record() must run in the unit of work of the handler's effects: "
                "pass uow= or use 'async with uow:'"
            )
        key = (consumer, message_id)
        if key in self._handled:
            return False
        staged = self._staged.setdefault(key, [])
        # An apply no longer in its unit of work was rolled back (or committed: then the key
        # is in ``_handled`` above); only a live one means "recorded earlier in this uow".
        staged[:] = [(u, a) for u, a in staged if _still_staged(u, a)]
        if any(u is joined for u, _ in staged):
            return False

        def check() -> None:
            if key in self._handled:
                raise ConcurrencyError(
                    f"message {message_id!r} was recorded for {consumer!r} by another unit of "
                    "work meanwhile"
                )

        def apply() -> None:
            self._handled[key] = self._clock()
            self._staged.pop(key, None)

        joined.stage(apply, check=check)
        staged.append((joined, apply))
        return True

    async def has_seen(self, consumer: str, message_id: str) -> bool:
        key = (consumer, message_id)
        if key in self._handled:
            return True
        ambient = current_memory_uow()
        return ambient is not None and any(
            u is ambient and _still_staged(u, a) for u, a in self._staged.get(key, [])
        )

    async def purge(self, older_than: timedelta, *, consumer: str | None = None) -> int:
        horizon = self._clock() - older_than
        old = [
            key
            for key, at in self._handled.items()
            if at < horizon and (consumer is None or key[0] == consumer)
        ]
        for key in old:
            del self._handled[key]
        return len(old)


def _still_staged(uow: InMemoryUnitOfWork, apply: Callable[[], None]) -> bool:
    # The unit of work drops its staged list on commit and rollback; membership is the only
    # trace of whether this record is still pending there.
    return uow.active and any(staged is apply for staged in uow._staged)
