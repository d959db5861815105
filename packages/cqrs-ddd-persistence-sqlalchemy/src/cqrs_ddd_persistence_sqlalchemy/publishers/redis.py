"""Redis Streams publisher (redis-py asyncio): ``XADD`` per message.

Requires the ``redis`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import encode_body, headers_of
from cqrs_ddd_persistence_sqlalchemy.publishers.lifecycle import ConnectedPublisher

__all__ = ["RedisStreamPublisher"]


class RedisStreamPublisher(ConnectedPublisher):
    """Appends each message to a stream; the ``XADD`` reply (the entry id) is the confirm.

    Entry fields: ``payload`` (JSON) plus every header of :func:`headers_of` (``message_id``,
    ``event_type``, ...), so consumers can deduplicate by ``message_id``.

    Args:
        url: Redis URL (ignored when ``client`` is given).
        stream: message → stream key (default: ``f"{stream_prefix}{event_type}"``, or one
            stream for everything when ``stream_name`` is given).
        maxlen: approximate cap of each stream (``XADD MAXLEN ~``).

    Example::

        async with RedisStreamPublisher("redis://127.0.0.1:6379/0", stream_name="events") as pub:
            await OutboxRelay(outbox, pub).run()
    """

    #: ``messaging.system`` of the relay's publish spans and metrics.
    messaging_system = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Redis | None = None,
        stream_name: str | None = None,
        stream_prefix: str = "events:",
        stream: Callable[[OutboxMessage], str] | None = None,
        maxlen: int | None = None,
    ) -> None:
        self._owns_client = client is None
        self.client: Redis = client if client is not None else Redis.from_url(url)
        if stream is None:
            if stream_name is not None:
                stream = lambda m: stream_name  # noqa: E731
            else:
                stream = lambda m: f"{stream_prefix}{m.event_type}"  # noqa: E731
        self.stream = stream
        self.maxlen = maxlen

    async def connect(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def publish(self, message: OutboxMessage) -> None:
        fields: dict[Any, Any] = dict(headers_of(message))
        fields["payload"] = encode_body(message)
        await self.client.xadd(
            self.stream(message),
            fields,
            maxlen=self.maxlen,
            approximate=self.maxlen is not None,
        )
