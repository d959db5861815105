"""Kafka consumer loop with the inbox (aiokafka consumer group, manual offset commits).

Requires the ``kafka`` extra (``aiokafka``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from cqrs_ddd_core.errors import ConfigurationError
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

__all__ = ["KafkaInboxConsumer", "received_from_record"]

logger = logging.getLogger(__name__)


def received_from_record(record: Any) -> ReceivedMessage:
    """A :class:`ReceivedMessage` from an aiokafka ``ConsumerRecord``."""
    headers = decode_headers(record.headers)
    position = f"{record.topic}/{record.partition}/{record.offset}"
    return ReceivedMessage(
        message_id=headers.get("message_id") or position,
        event_type=headers.get("event_type", ""),
        body=record.value or b"",
        headers=headers,
        source=record.topic,
        position=position,
        raw=record,
    )


class KafkaInboxConsumer(InboxConsumer):
    """Reads topics as a member of a consumer group and handles each record exactly once.

    Records of a partition are handled one at a time, in offset order (one aggregate's
    messages share a partition when published with :class:`KafkaPublisher`, so they are
    applied in order). After the records of a fetched partition batch are handled (each in its
    own committed unit of work) their offsets are committed; a crash in between makes the group
    deliver them again, and the inbox skips them. A record whose handler fails is not
    committed: the partition is rewound to it and it is tried again after ``error_backoff``
    (later records of that partition wait: order is kept).

    Args:
        handler: ``await handler(message, uow)`` (see :class:`InboxConsumer`).
        topics: topics to subscribe to.
        group_id: the Kafka consumer group; also the inbox ``consumer`` name unless given.
        uow_factory: a new ``SQLAlchemyUnitOfWork`` per record.
        bootstrap_servers: ``"host:port"`` or a list.
        batch_size: records per fetch.
        poll_timeout: seconds a fetch waits for records (also the stop latency when idle).
        consumer_options: more ``AIOKafkaConsumer`` keyword arguments (``auto_offset_reset``
            defaults to ``"earliest"``; offsets are always committed by this loop).

    Example::

        async def on_order_placed(message: ReceivedMessage, uow: SQLAlchemyUnitOfWork) -> None:
            await invoices.add(Invoice.for_order(message.payload), uow=uow)

        consumer = KafkaInboxConsumer(
            on_order_placed, topics=["OrderPlaced"], group_id="billing",
            uow_factory=lambda: SQLAlchemyUnitOfWork(session_factory),
            bootstrap_servers="127.0.0.1:9092",
        )
        await consumer.run()        # until consumer.stop()
    """

    messaging_system = "kafka"

    def __init__(
        self,
        handler: Handler,
        *,
        topics: Sequence[str],
        group_id: str,
        uow_factory: Callable[[], SQLAlchemyUnitOfWork],
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        consumer: str | None = None,
        inbox: IInbox | None = None,
        batch_size: int = 100,
        poll_timeout: float = 1.0,
        consumer_options: Mapping[str, Any] | None = None,
        error_backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            handler,
            consumer=consumer or group_id,
            uow_factory=uow_factory,
            inbox=inbox,
            error_backoff=error_backoff,
            name=name,
        )
        if not topics:
            raise ConfigurationError("KafkaInboxConsumer needs at least one topic")
        options = {"auto_offset_reset": "earliest", **(consumer_options or {})}
        if options.pop("enable_auto_commit", False):
            raise ConfigurationError(
                "enable_auto_commit would commit offsets before the handler's unit of work "
                "committed; KafkaInboxConsumer commits them itself"
            )
        self.topics = list(topics)
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.consumer_options = options
        self._failures: dict[TopicPartition, int] = {}

    async def _run(self) -> None:
        """Consume until :meth:`stop`; the group is left cleanly on the way out."""
        client = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            **self.consumer_options,
        )
        await client.start()
        try:
            failures = 0
            while not self.stopping:
                try:
                    batches = await client.getmany(
                        timeout_ms=int(self.poll_timeout * 1000), max_records=self.batch_size
                    )
                    for tp, records in batches.items():
                        await self._partition(client, tp, records)
                        if self.stopping:
                            break
                    failures = 0
                except KafkaError as exc:
                    failures += 1
                    await self.sleep(self.loop_error(exc, failures))
        finally:
            await client.stop()

    async def _partition(self, client: Any, tp: TopicPartition, records: Sequence[Any]) -> None:
        next_offset: int | None = None
        done = 0
        for record in records:
            outcome = await self.process(received_from_record(record))
            if outcome is Outcome.FAILED:
                # Fetched again from here after the pause; later records of the partition
                # wait, so its order holds.
                client.seek(tp, record.offset)
                attempt = self._failures[tp] = self._failures.get(tp, 0) + 1
                await self.sleep(self.error_backoff.seconds(attempt))
                break
            self._failures.pop(tp, None)
            next_offset = record.offset + 1
            done += 1
            if self.stopping:
                break
        if next_offset is not None:
            await self._commit(client, tp, next_offset, done)

    async def _commit(self, client: Any, tp: TopicPartition, offset: int, count: int) -> None:
        try:
            await client.commit({tp: offset})
        except KafkaError as exc:
            # A rebalance took the partition away: its new owner gets these records again and
            # the inbox skips them. Nothing is lost by not committing.
            logger.warning(
                "%s: offset %d of %s/%d not committed (%s); the records will be redelivered "
                "and skipped by the inbox",
                self.name,
                offset,
                tp.topic,
                tp.partition,
                type(exc).__name__,
            )
        else:
            self.metrics.acked += count
