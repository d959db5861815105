"""Kafka publisher (aiokafka): keyed by aggregate, ``acks="all"``, idempotent where possible.

Requires the ``kafka`` extra (``aiokafka``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    UnknownError,
    UnsupportedVersionError,
)

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import (
    TRACE_CONTEXT_KEYS,
    encode_body,
    headers_of,
)
from cqrs_ddd_persistence_sqlalchemy.publishers.lifecycle import ConnectedPublisher

__all__ = ["TRACE_CONTEXT_KEYS", "KafkaPublisher"]

logger = logging.getLogger(__name__)


# What a broker answers to InitProducerId when it cannot give an idempotent producer id:
# no such API (old brokers), no IDEMPOTENT_WRITE permission, or a generic refusal.
_NO_IDEMPOTENCE = (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError)


class KafkaPublisher(ConnectedPublisher):
    """Publishes each outbox message as one Kafka record and waits for the broker's ack.

    - **Key**: ``partition_key`` (the aggregate id for domain events), so one aggregate's
      messages land in one partition, in order; messages without a key are spread.
    - **Topic**: ``topic=`` as a fixed name, a function of the message, or (default) the
      event type.
    - **Headers** (UTF-8): :func:`~.envelope.headers_of` (``message_id``, ``event_type``,
      correlation / causation / tenant ids, ``partition_key``, ``created_at``, ``metadata``) and
      the W3C trace context (``traceparent``, ``tracestate``, ``baggage``) when the message's
      metadata carries it.
    - **Confirm**: ``acks="all"``; :meth:`publish` returns once every in-sync replica has the
      record and raises on refusal or after ``request_timeout`` (the relay retries later).
    - **Idempotence**: ``idempotence=None`` (default) asks for an idempotent producer, so a
      send the client retries is stored once, and falls back to a plain ``acks="all"`` producer
      with a warning when the broker refuses it; ``True`` makes the refusal an error, ``False``
      does not ask. The relay's own re-publish after a crash is a new send either way:
      consumers deduplicate by ``message_id`` (see ``SQLAlchemyInbox``).

    aiokafka keeps one request per partition in flight, so records of one key are stored in
    the order they were sent; publish through ``SQLAlchemyOutboxStorage(ordered_by_key=True)``
    to also *send* them in order.

    Args:
        bootstrap_servers: ``"host:port"`` or a list of them.
        topic: fixed topic, or message → topic (default: the event type).
        key: message → record key (default: ``partition_key``).
        idempotence: see above.
        request_timeout: seconds until an unconfirmed send fails.
        producer_options: more ``AIOKafkaProducer`` keyword arguments (security, linger...).
        producer: a producer you started and close yourself (options above are then unused).

    Example::

        async with KafkaPublisher("127.0.0.1:9092", topic="orders") as publisher:
            await OutboxRelay(SQLAlchemyOutboxStorage(engine, ordered_by_key=True),
                              publisher).run()
    """

    #: ``messaging.system`` of the relay's publish spans and metrics.
    messaging_system = "kafka"

    def __init__(
        self,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        *,
        topic: str | Callable[[OutboxMessage], str] | None = None,
        key: Callable[[OutboxMessage], str | None] | None = None,
        idempotence: bool | None = None,
        request_timeout: float = 30.0,
        producer_options: Mapping[str, Any] | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        if topic is None:
            self.topic: Callable[[OutboxMessage], str] = lambda m: m.event_type
        elif isinstance(topic, str):
            fixed = topic
            self.topic = lambda m: fixed
        else:
            self.topic = topic
        self.key = key or (lambda m: m.partition_key)
        self.idempotence = idempotence
        self.request_timeout = request_timeout
        self.producer_options = dict(producer_options or {})
        self._producer: Any = producer
        self._owns_producer = producer is None
        self._started = producer is not None
        #: Whether the running producer is idempotent (``None`` before :meth:`connect`).
        self.idempotent: bool | None = None

    async def connect(self) -> None:
        """Start the producer (idempotent where the broker allows it, see the class docs)."""
        if self._started:
            return
        if self.idempotence is not False:
            try:
                self._producer = await self._start(idempotent=True)
                self.idempotent = True
            except _NO_IDEMPOTENCE as exc:
                if self.idempotence:
                    raise ConfigurationError(
                        f"the Kafka broker at {self.bootstrap_servers} refused an idempotent "
                        f"producer ({type(exc).__name__}); pass idempotence=None to fall back"
                    ) from exc
                logger.warning(
                    "kafka: the broker at %s refused an idempotent producer (%s); publishing "
                    "with acks=all without idempotence: a send retried by the client may be "
                    "stored twice (consumers deduplicate by the message_id header)",
                    self.bootstrap_servers,
                    type(exc).__name__,
                )
        if self._producer is None:
            self._producer = await self._start(idempotent=False)
            self.idempotent = False
        self._started = True

    async def _start(self, *, idempotent: bool) -> Any:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            enable_idempotence=idempotent,
            request_timeout_ms=int(self.request_timeout * 1000),
            **self.producer_options,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # start() leaves the client's connections open
            raise
        return producer

    async def close(self) -> None:
        if self._producer is not None and self._owns_producer:
            await self._producer.stop()
            self._producer = None
            self._started = False

    async def publish(self, message: OutboxMessage) -> None:
        if not self._started:
            await self.connect()
        if self._producer is None:  # pragma: no cover - connect() sets it or raises
            raise ConfigurationError("KafkaPublisher is not connected")
        key = self.key(message)
        await self._producer.send_and_wait(
            self.topic(message),
            value=encode_body(message),
            key=key.encode() if key is not None else None,
            headers=kafka_headers(message),
        )


def kafka_headers(message: OutboxMessage) -> list[tuple[str, bytes]]:
    """The record headers of ``message`` (see :class:`KafkaPublisher`)."""
    headers = headers_of(message)  # trace context included
    return [(name, value.encode()) for name, value in headers.items()]
