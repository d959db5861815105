"""Message publisher port: what an outbox relay hands messages to."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cqrs_ddd_core.ports.outbox import OutboxMessage

__all__ = ["IMessagePublisher"]


@runtime_checkable
class IMessagePublisher(Protocol):
    """Publishes one message to a broker.

    ``publish`` returns only once the broker has *confirmed* the message (publisher confirm,
    JetStream ack, stream append) and raises if the broker refused it or did not answer; the
    relay marks a message published only after ``publish`` returned. Publishers should carry
    ``message.message_id`` as the broker's message id / a header so consumers can deduplicate
    (delivery is at-least-once).

    Example (Kafka through aiokafka)::

        class KafkaPublisher:
            def __init__(self, producer: AIOKafkaProducer) -> None:
                self.producer = producer  # acks="all", enable_idempotence=True

            async def publish(self, message: OutboxMessage) -> None:
                await self.producer.send_and_wait(
                    message.event_type,
                    json.dumps(message.payload).encode(),
                    key=(message.partition_key or message.message_id).encode(),
                    headers=[("message_id", message.message_id.encode())],
                )
    """

    async def publish(self, message: OutboxMessage) -> None: ...
