"""What every inbox consumer shares: the received message, the handler call, the stop.

A broker loop (``consumers.kafka``, ``.rabbitmq``, ``.nats``, ``.redis``) reads a message,
turns it into a :class:`ReceivedMessage` and calls :meth:`InboxConsumer.process`, which runs
the handler in a fresh unit of work together with the inbox record and commits both. The loop
acknowledges (or commits the offset) only when ``process`` returned ``HANDLED`` or
``DUPLICATE`` — i.e. after the commit — so a crash anywhere before the acknowledgement makes
the broker redeliver, and the inbox turns the redelivery into a no-op.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from cqrs_ddd_core.errors import ConfigurationError, MissingSchemaError
from cqrs_ddd_core.ports.inbox import MAX_INBOX_KEY_LENGTH, IInbox
from cqrs_ddd_persistence_sqlalchemy.inbox import SQLAlchemyInbox
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import span, stored_context, tracer_for
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff
from cqrs_ddd_persistence_sqlalchemy.serialization import json_loads
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.workers import WorkerLifecycle

__all__ = [
    "ConsumerMetrics",
    "Handler",
    "InboxConsumer",
    "Outcome",
    "ReceivedMessage",
    "inbox_key",
]

logger = logging.getLogger(__name__)

# Wiring errors: retrying the message cannot help, the consumer stops and says why.
_FATAL = (ConfigurationError, MissingSchemaError)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMessage:
    """One message as a broker delivered it, in the envelope the library's publishers use.

    Attributes:
        message_id: the ``message_id`` header (the outbox message id); for messages of other
            producers the broker's own id, else its position (e.g. ``topic/partition/offset``),
            which still deduplicates the broker's redeliveries.
        event_type: the ``event_type`` header (empty when absent).
        body: the raw body; :attr:`payload` decodes it as JSON.
        headers: string headers (``correlation_id``, ``partition_key``, ``traceparent``...).
        source: topic, queue, subject or stream it came from.
        position: where the broker keeps it (offset, delivery tag, sequence, entry id).
        raw: the client library's own message object.
    """

    message_id: str
    event_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    position: str = ""
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def payload(self) -> Any:
        """The body decoded as JSON (library codec)."""
        return json_loads(self.body)

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("correlation_id")

    @property
    def partition_key(self) -> str | None:
        return self.headers.get("partition_key")


#: ``await handler(message, uow)``: apply the message's effects through ``uow`` (do not commit).
Handler = Callable[[ReceivedMessage, SQLAlchemyUnitOfWork], Awaitable[None]]


class Outcome(StrEnum):
    """What :meth:`InboxConsumer.process` did with a message."""

    #: The handler ran and its unit of work committed: acknowledge.
    HANDLED = "handled"
    #: Recorded before: the handler was skipped; acknowledge.
    DUPLICATE = "duplicate"
    #: The handler, the inbox or the commit failed; nothing was written: do not acknowledge.
    FAILED = "failed"


@dataclass
class ConsumerMetrics:
    """Counters since start."""

    received: int = 0
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    acked: int = 0
    #: Errors of the broker connection or loop (not of a message).
    errors: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


def inbox_key(message_id: str) -> str:
    """The id the inbox stores: ``message_id``, or its SHA-256 when it is longer than the
    inbox keeps (a foreign producer's id must not make a message unprocessable)."""
    if len(message_id) <= MAX_INBOX_KEY_LENGTH:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()


class InboxConsumer(WorkerLifecycle):
    """Base of the broker loops: runs a handler exactly once per message id.

    The life cycle is the library's one (:class:`~cqrs_ddd_persistence_sqlalchemy.workers.
    WorkerLifecycle`): ``await consumer.run()`` until ``consumer.stop()`` (``await
    consumer.stop()`` also waits until ``run()`` returned); the message in flight is finished
    and acknowledged first.

    Args:
        handler: ``await handler(message, uow)``; raise to leave the message unacknowledged
            (it is redelivered after ``error_backoff``).
        consumer: the name the inbox records under (one per logical consumer, shared by its
            replicas: a message handled by one replica is a duplicate for the others).
        uow_factory: a new ``SQLAlchemyUnitOfWork`` per message (``event_sinks=`` included,
            so a handler's own domain events reach the outbox in the same transaction).
        inbox: default ``SQLAlchemyInbox()`` (joins the unit of work).
        error_backoff: delay before a failed message is tried again.
    """

    #: ``messaging.system`` of the consumer spans (the broker loops name theirs).
    messaging_system = "unknown"

    def __init__(
        self,
        handler: Handler,
        *,
        consumer: str,
        uow_factory: Callable[[], SQLAlchemyUnitOfWork],
        inbox: IInbox | None = None,
        error_backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        if not consumer:
            raise ConfigurationError("an inbox consumer needs a consumer name")
        super().__init__()
        self.handler = handler
        self.consumer = consumer
        self.uow_factory = uow_factory
        self.inbox: IInbox = inbox if inbox is not None else SQLAlchemyInbox()
        self.error_backoff = error_backoff or Backoff(base=0.5, maximum=30.0)
        self.name = name or f"inbox-consumer-{consumer}"
        self.metrics = ConsumerMetrics()

    async def run(self) -> None:
        """Consume until :meth:`stop` (see the broker loop's ``_run``)."""
        async with self.running():
            await self._run()

    async def _run(self) -> None:
        raise NotImplementedError

    async def process(self, message: ReceivedMessage) -> Outcome:
        """Run the handler in a new unit of work with the inbox record; commit both.

        With tracing on, under a consumer span continuing the trace of the ``traceparent``
        header (the relay's publish span)."""
        if tracer_for() is None:
            return await self._process(message)
        attributes = {
            "messaging.system": self.messaging_system,
            "messaging.operation.type": "process",
            "messaging.destination.name": message.source,
            "messaging.message.id": message.message_id,
            "messaging.consumer.group.name": self.consumer,
        }
        with span(
            f"process {message.source or message.event_type}",
            attributes,
            kind="consumer",
            context=stored_context(message.headers),
        ):
            return await self._process(message)

    async def _process(self, message: ReceivedMessage) -> Outcome:
        self.metrics.received += 1
        try:
            async with self.uow_factory() as uow:
                if not await self.inbox.record(
                    self.consumer, inbox_key(message.message_id), uow=uow
                ):
                    self.metrics.duplicates += 1
                    return Outcome.DUPLICATE
                await self.handler(message, uow)
                await uow.commit()
        except _FATAL:
            logger.exception("%s: cannot handle messages, stopping", self.name)
            raise
        except Exception as exc:
            self.metrics.failed += 1
            self.metrics.last_error = repr(exc)
            logger.exception(
                "%s: message %s from %s failed; not acknowledged, it will be redelivered",
                self.name,
                message.message_id,
                message.source,
            )
            return Outcome.FAILED
        self.metrics.handled += 1
        return Outcome.HANDLED

    def loop_error(self, exc: BaseException, failures: int) -> float:
        """Count and log a broker/loop error; the delay before the loop tries again."""
        self.metrics.errors += 1
        self.metrics.last_error = repr(exc)
        delay = self.error_backoff.seconds(failures)
        logger.exception("%s: broker error, retrying in %.1fs", self.name, delay)
        return delay


def decode_headers(pairs: Any) -> dict[str, str]:
    """``{name: value}`` from header pairs or a mapping, bytes decoded as UTF-8."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs or ()
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.decode() if isinstance(name, bytes) else str(name)
        if isinstance(value, bytes):
            headers[key] = value.decode("utf-8", errors="replace")
        elif value is not None:
            headers[key] = str(value)
    return headers
