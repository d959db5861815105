"""NATS JetStream publisher (nats-py) with acked publish.

Requires the ``nats`` extra (``nats-py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import encode_body, headers_of
from cqrs_ddd_persistence_sqlalchemy.publishers.lifecycle import ConnectedPublisher

__all__ = ["NatsJetStreamPublisher"]


class NatsJetStreamPublisher(ConnectedPublisher):
    """Publishes to JetStream and waits for the stream's ack.

    ``message_id`` travels as ``Nats-Msg-Id``, so JetStream itself drops a re-publish inside
    the stream's duplicate window (a relay retry after a lost ack is not stored twice).
    A missing stream, a refused message or no ack within ``timeout`` raise, and the relay
    retries later.

    Args:
        servers: NATS URL(s).
        subject: message → subject (default ``f"{subject_prefix}.{event_type}"``).
        stream: when given with ``create_stream``, the stream is created (or updated) for
            ``f"{subject_prefix}.>"`` at connect.

    Example::

        async with NatsJetStreamPublisher("nats://127.0.0.1:4222", stream="EVENTS",
                                          create_stream=True) as pub:
            await OutboxRelay(outbox, pub).run()
    """

    #: ``messaging.system`` of the relay's publish spans and metrics.
    messaging_system = "nats"

    def __init__(
        self,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        subject_prefix: str = "events",
        subject: Callable[[OutboxMessage], str] | None = None,
        stream: str | None = None,
        create_stream: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.servers = servers
        self.subject_prefix = subject_prefix
        self.subject = subject or (lambda m: f"{self.subject_prefix}.{m.event_type}")
        self.stream = stream
        self.create_stream = create_stream
        self.timeout = timeout
        self._nc: Any = None
        self._js: JetStreamContext | None = None

    async def connect(self) -> None:
        if self._js is not None:
            return
        self._nc = await nats.connect(self.servers)
        self._js = self._nc.jetstream(timeout=self.timeout)
        if self.create_stream and self.stream:
            subjects = [f"{self.subject_prefix}.>"]
            try:
                await self._js.add_stream(name=self.stream, subjects=subjects)
            except BadRequestError:
                await self._js.update_stream(name=self.stream, subjects=subjects)

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
        self._nc = None
        self._js = None

    async def publish(self, message: OutboxMessage) -> None:
        if self._js is None:
            await self.connect()
        if self._js is None:  # pragma: no cover - connect() sets it or raises
            raise ConfigurationError("NatsJetStreamPublisher is not connected")
        headers = headers_of(message)
        headers["Nats-Msg-Id"] = message.message_id
        await self._js.publish(
            self.subject(message),
            encode_body(message),
            timeout=self.timeout,
            stream=self.stream,
            headers=headers,
        )
