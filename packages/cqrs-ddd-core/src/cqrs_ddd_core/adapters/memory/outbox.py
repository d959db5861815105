"""In-memory outbox with leases, backoff and dead-lettering."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cqrs_ddd_core.adapters.memory._uow import run_in_uow
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.ports.outbox import OutboxMessage

__all__ = ["InMemoryOutboxStorage"]


@dataclass(slots=True)
class _Row:
    message: OutboxMessage
    available_at: datetime
    leased_until: datetime | None = None
    dead: bool = False


class InMemoryOutboxStorage:
    """``get_pending`` leases what it returns for ``lease_seconds``; ``mark_failed`` backs off
    exponentially (``base_backoff_seconds * 2**(attempt-1)``) and dead-letters after
    ``max_attempts``."""

    def __init__(
        self,
        *,
        lease_seconds: float = 30.0,
        base_backoff_seconds: float = 1.0,
        max_attempts: int = 10,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.lease = timedelta(seconds=lease_seconds)
        self.base_backoff = base_backoff_seconds
        self.max_attempts = max_attempts
        self._clock = clock
        self._rows: dict[str, _Row] = {}

    async def save_messages(self, messages: Sequence[OutboxMessage], *, uow: Any = None) -> None:
        batch = list(messages)

        def apply() -> None:
            now = self._clock()
            for m in batch:
                self._rows.setdefault(m.message_id, _Row(m, available_at=now))

        run_in_uow(uow, apply)

    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        now = self._clock()
        due = [
            r
            for r in self._rows.values()
            if r.message.published_at is None
            and not r.dead
            and r.available_at <= now
            and (r.leased_until is None or r.leased_until <= now)
        ]
        due.sort(key=lambda r: r.message.created_at)
        for r in due[:limit]:
            r.leased_until = now + self.lease
        return [r.message for r in due[:limit]]

    async def mark_published(self, message_ids: Sequence[str]) -> None:
        now = self._clock()
        for mid in message_ids:
            row = self._rows.get(mid)
            if row is not None:
                row.message = dataclasses.replace(row.message, published_at=now)
                row.leased_until = None

    async def mark_failed(self, message_id: str, error: str) -> None:
        row = self._rows.get(message_id)
        if row is None:
            return
        attempts = row.message.retry_count + 1
        row.message = dataclasses.replace(row.message, retry_count=attempts, error=error)
        row.leased_until = None
        if attempts >= self.max_attempts:
            row.dead = True
        else:
            delay = self.base_backoff * 2 ** (attempts - 1)
            row.available_at = self._clock() + timedelta(seconds=delay)

    async def dead_letters(self, limit: int = 100) -> list[OutboxMessage]:
        return [r.message for r in self._rows.values() if r.dead][:limit]

    async def requeue(self, message_ids: Sequence[str] | None = None) -> int:
        count = 0
        for mid, row in self._rows.items():
            if row.dead and (message_ids is None or mid in message_ids):
                row.dead = False
                row.available_at = self._clock()
                row.message = dataclasses.replace(row.message, retry_count=0)
                count += 1
        return count
