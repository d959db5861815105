"""NATS JetStream consumer loop with the inbox (durable pull consumer, explicit acks).

Requires the ``nats`` extra (``nats-py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nats
from nats.errors import Error as NatsError

from cqrs_ddd_core.ports.inbox import IInbox
from cqrs_ddd_persistence_sqlalchemy.consumers.base import (
    Handler,
    InboxConsumer,
    Outcome,
    ReceivedMessage,
    decode_headers,
)
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["NatsInboxConsumer", "received_from_nats"]


def received_from_nats(message: Any) -> ReceivedMessage:
    """A :class:`ReceivedMessage` from a JetStream ``Msg``."""
    headers = decode_headers(message.headers or {})
    meta = message.metadata
    position = f"{meta.stream}/{meta.sequence.stream}"
    return ReceivedMessage(
        message_id=headers.get("message_id") or headers.get("Nats-Msg-Id") or position,
        event_type=headers.get("event_type", ""),
        body=message.data,
        headers=headers,
        source=message.subject,
        position=position,
        raw=message,
    )


class NatsInboxConsumer(InboxConsumer):
    """Pulls from a durable JetStream consumer and handles each message exactly once.

    Messages are fetched in batches and handled one at a time; each is acked after its unit of
    work committed (or after the inbox found it a duplicate). Unacked messages are redelivered
    by JetStream after the consumer's ``ack_wait``; a failed one is ``nak``-ed with
    ``error_backoff`` as the redelivery delay (messages after it may then pass it).

    Args:
        handler: ``await handler(message, uow)`` (see :class:`InboxConsumer`).
        subject: subject filter (``"events.>"`` for everything ``NatsJetStreamPublisher``
            publishes with its default prefix).
        durable: the durable consumer name (created on first use); also the inbox
            ``consumer`` name unless given.
        uow_factory: a new ``SQLAlchemyUnitOfWork`` per message.
        stream: the stream (looked up by subject when omitted).

    Example::

        consumer = NatsInboxConsumer(
            on_order_placed, subject="events.OrderPlaced", durable="billing", stream="EVENTS",
            uow_factory=lambda: SQLAlchemyUnitOfWork(session_factory),
        )
        await consumer.run()        # until consumer.stop()
    """

    messaging_system = "nats"

    def __init__(
        self,
        handler: Handler,
        *,
        subject: str,
        durable: str,
        uow_factory: Callable[[], SQLAlchemyUnitOfWork],
        servers: str | list[str] = "nats://127.0.0.1:4222",
        stream: str | None = None,
        consumer: str | None = None,
        inbox: IInbox | None = None,
        batch_size: int = 100,
        poll_timeout: float = 1.0,
        error_backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            handler,
            consumer=consumer or durable,
            uow_factory=uow_factory,
            inbox=inbox,
            error_backoff=error_backoff,
            name=name,
        )
        self.subject = subject
        self.durable = durable
        self.servers = servers
        self.stream = stream
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self._failures = 0

    async def _run(self) -> None:
        """Consume until :meth:`stop` (the fetched batch is finished first)."""
        nc = await nats.connect(self.servers)
        try:
            js = nc.jetstream()
            subscription = await js.pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream
            )
            failures = 0
            while not self.stopping:
                try:
                    batch = await subscription.fetch(self.batch_size, timeout=self.poll_timeout)
                    for message in batch:
                        await self._handle(message)
                    failures = 0
                except TimeoutError:
                    continue  # nothing arrived within poll_timeout (nats' and asyncio's)
                except NatsError as exc:
                    # An unacked message comes back after ack_wait and is skipped by the inbox.
                    failures += 1
                    await self.sleep(self.loop_error(exc, failures))
        finally:
            # Not drain(): fetched but unhandled messages are redelivered after ack_wait anyway,
            # and draining waits on the pull request still open at the server.
            await nc.close()

    async def _handle(self, message: Any) -> None:
        outcome = await self.process(received_from_nats(message))
        if outcome is Outcome.FAILED:
            self._failures += 1
            await message.nak(delay=self.error_backoff.seconds(self._failures))
            return
        self._failures = 0
        await message.ack()
        self.metrics.acked += 1
