"""RabbitMQ publisher (aio-pika) with publisher confirms.

Requires the ``rabbitmq`` extra (``aio-pika``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import encode_body, headers_of
from cqrs_ddd_persistence_sqlalchemy.publishers.lifecycle import ConnectedPublisher

__all__ = ["RabbitMQPublisher"]


class RabbitMQPublisher(ConnectedPublisher):
    """Publishes to an exchange and waits for the broker's confirm.

    The channel is opened with publisher confirms; ``publish`` returns after ``Basic.Ack`` and
    raises ``aio_pika.exceptions.DeliveryError`` on ``Basic.Nack`` (e.g. a full queue with
    ``x-overflow=reject-publish``), ``PublishError`` when a ``mandatory`` message is unroutable,
    and ``TimeoutError`` when no confirm arrives within ``confirm_timeout`` — the relay then
    retries the message later. Messages are persistent; ``message_id`` is the AMQP
    ``message-id`` property and a header, ``event_type`` the AMQP ``type``.

    Args:
        url: AMQP URL.
        exchange: exchange name (declared durable with ``exchange_type`` when ``declare``).
        routing_key: message → routing key (default: ``event_type``).
        mandatory: ask the broker to return unroutable messages (an error, not a silent drop).

    Example::

        async with RabbitMQPublisher("amqp://guest:guest@127.0.0.1/", exchange="events") as pub:
            await OutboxRelay(outbox, pub).run()
    """

    #: ``messaging.system`` of the relay's publish spans and metrics.
    messaging_system = "rabbitmq"

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        exchange: str = "cqrs_ddd.events",
        exchange_type: str = "topic",
        declare: bool = True,
        routing_key: Callable[[OutboxMessage], str] | None = None,
        mandatory: bool = True,
        confirm_timeout: float = 30.0,
        connection: AbstractConnection | None = None,
    ) -> None:
        self.url = url
        self.exchange_name = exchange
        self.exchange_type = aio_pika.ExchangeType(exchange_type)
        self.declare = declare
        self.routing_key = routing_key or (lambda m: m.event_type)
        self.mandatory = mandatory
        self.confirm_timeout = confirm_timeout
        self._connection = connection
        self._owns_connection = connection is None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def connect(self) -> None:
        """Open the connection (robust: reconnects) and a confirming channel."""
        if self._exchange is not None:
            return
        if self._connection is None:
            self._connection = await aio_pika.connect_robust(self.url)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=self.mandatory
        )
        if self.declare:
            self._exchange = await self._channel.declare_exchange(
                self.exchange_name, self.exchange_type, durable=True
            )
        else:
            self._exchange = await self._channel.get_exchange(self.exchange_name, ensure=True)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        if self._connection is not None and self._owns_connection:
            await self._connection.close()
            self._connection = None
        self._channel = None
        self._exchange = None

    async def publish(self, message: OutboxMessage) -> None:
        if self._exchange is None:
            await self.connect()
        if self._exchange is None:  # pragma: no cover - connect() sets it or raises
            raise ConfigurationError("RabbitMQPublisher is not connected")
        headers: dict[str, Any] = dict(headers_of(message))
        amqp_message = aio_pika.Message(
            body=encode_body(message),
            message_id=message.message_id,
            type=message.event_type,
            correlation_id=message.correlation_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=message.created_at,
            headers=headers,
        )
        await self._exchange.publish(
            amqp_message,
            routing_key=self.routing_key(message),
            mandatory=self.mandatory,
            timeout=self.confirm_timeout,
        )
