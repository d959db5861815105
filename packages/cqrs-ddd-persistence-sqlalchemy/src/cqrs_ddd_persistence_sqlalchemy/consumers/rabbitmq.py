"""RabbitMQ consumer loop with the inbox (aio-pika, manual acks).

Requires the ``rabbitmq`` extra (``aio-pika``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractQueueIterator
from aio_pika.exceptions import AMQPError

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

__all__ = ["RabbitMQInboxConsumer", "received_from_amqp"]

logger = logging.getLogger(__name__)


def received_from_amqp(message: AbstractIncomingMessage, queue: str) -> ReceivedMessage | None:
    """A :class:`ReceivedMessage` from an AMQP delivery; ``None`` when it carries no id."""
    headers = decode_headers(message.headers or {})
    message_id = headers.get("message_id") or message.message_id
    if not message_id:
        return None
    return ReceivedMessage(
        message_id=message_id,
        event_type=headers.get("event_type") or message.type or "",
        body=message.body,
        headers=headers,
        source=queue,
        position=str(message.delivery_tag),
        raw=message,
    )


class RabbitMQInboxConsumer(InboxConsumer):
    """Consumes a durable queue and handles each message exactly once.

    Messages are handled one at a time in delivery order; each is acknowledged after its unit
    of work committed (or after the inbox found it a duplicate). A consumer that dies leaves
    its unacknowledged messages to the broker, which redelivers them; those already handled
    are skipped by the inbox. A message whose handler fails is requeued after
    ``error_backoff`` (messages after it may then pass it). A message without any id
    (``message_id`` header or AMQP ``message-id``) cannot be deduplicated: it is rejected
    without requeue (to the queue's dead-letter exchange, if it has one) and logged.

    Args:
        handler: ``await handler(message, uow)`` (see :class:`InboxConsumer`).
        queue: queue name (declared durable unless ``declare=False``).
        uow_factory: a new ``SQLAlchemyUnitOfWork`` per message.
        url: AMQP URL.
        exchange: when given, the queue is bound to this durable topic exchange (the
            ``RabbitMQPublisher`` default is ``"cqrs_ddd.events"``) with ``routing_key``.
        consumer: inbox consumer name (default: the queue name).
        prefetch: unacknowledged messages the broker hands over in advance.

    Example::

        consumer = RabbitMQInboxConsumer(
            on_order_placed, queue="billing", exchange="cqrs_ddd.events",
            routing_key="OrderPlaced",
            uow_factory=lambda: SQLAlchemyUnitOfWork(session_factory),
        )
        await consumer.run()        # until consumer.stop()
    """

    messaging_system = "rabbitmq"

    def __init__(
        self,
        handler: Handler,
        *,
        queue: str,
        uow_factory: Callable[[], SQLAlchemyUnitOfWork],
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        exchange: str | None = None,
        routing_key: str = "#",
        declare: bool = True,
        consumer: str | None = None,
        inbox: IInbox | None = None,
        prefetch: int = 100,
        error_backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            handler,
            consumer=consumer or queue,
            uow_factory=uow_factory,
            inbox=inbox,
            error_backoff=error_backoff,
            name=name,
        )
        self.queue = queue
        self.url = url
        self.exchange = exchange
        self.routing_key = routing_key
        self.declare = declare
        self.prefetch = prefetch
        self._failures = 0

    async def _run(self) -> None:
        """Consume until :meth:`stop` (the message in flight is finished and acknowledged).

        A lost connection or channel is logged and consumption starts again after a backoff;
        the broker redelivers what was not acknowledged and the inbox skips what was handled.
        """
        failures = 0
        while not self.stopping:
            try:
                await self._consume()
                failures = 0
            except (AMQPError, ConnectionError) as exc:
                failures += 1
                await self.sleep(self.loop_error(exc, failures))

    async def _consume(self) -> None:
        connection = await aio_pika.connect_robust(self.url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            queue: AbstractQueue
            if self.declare:
                queue = await channel.declare_queue(self.queue, durable=True)
            else:
                queue = await channel.get_queue(self.queue, ensure=True)
            if self.exchange:
                exchange = await channel.declare_exchange(
                    self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
                await queue.bind(exchange, routing_key=self.routing_key)
            async with queue.iterator() as deliveries:
                closer = asyncio.create_task(self._close_on_stop(deliveries))
                try:
                    async for delivery in deliveries:
                        await self._handle(delivery)
                        if self.stopping:
                            break
                finally:
                    closer.cancel()
        finally:
            await connection.close()

    async def _close_on_stop(self, deliveries: AbstractQueueIterator) -> None:
        await self._stop_requested.wait()
        await deliveries.close()

    async def _handle(self, delivery: AbstractIncomingMessage) -> None:
        message = received_from_amqp(delivery, self.queue)
        if message is None:
            logger.error(
                "%s: a message without message_id (delivery %s) cannot be deduplicated; "
                "rejected without requeue",
                self.name,
                delivery.delivery_tag,
            )
            await delivery.reject(requeue=False)
            return
        outcome = await self.process(message)
        if outcome is Outcome.FAILED:
            self._failures += 1
            await self.sleep(self.error_backoff.seconds(self._failures))
            await delivery.nack(requeue=True)
            return
        self._failures = 0
        await delivery.ack()
        self.metrics.acked += 1
