"""In-memory publisher: records what was published (tests, demos)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from cqrs_ddd_core.ports.outbox import OutboxMessage

__all__ = ["InMemoryPublisher"]


class InMemoryPublisher:
    """Appends every message to :attr:`published`.

    ``fail`` (a callable returning an exception to raise, or ``None``) simulates a refusing
    broker; ``delay`` simulates confirm latency.

    Example::

        publisher = InMemoryPublisher(fail=lambda m: ConnectionError("down") if broken else None)
    """

    #: ``messaging.system`` of the relay's publish spans and metrics.
    messaging_system = "memory"

    def __init__(
        self,
        *,
        fail: Callable[[OutboxMessage], BaseException | None] | None = None,
        delay: float = 0.0,
        on_publish: Callable[[OutboxMessage], Awaitable[None]] | None = None,
    ) -> None:
        self.published: list[OutboxMessage] = []
        self.fail = fail
        self.delay = delay
        self.on_publish = on_publish

    async def publish(self, message: OutboxMessage) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.on_publish is not None:
            await self.on_publish(message)
        error = self.fail(message) if self.fail is not None else None
        if error is not None:
            raise error
        self.published.append(message)

    @property
    def ids(self) -> list[str]:
        return [m.message_id for m in self.published]
