"""Logging publisher: writes each message to a logger (development, dry runs)."""

from __future__ import annotations

import logging

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import encode_body

__all__ = ["LoggingPublisher"]


class LoggingPublisher:
    """Logs ``event_type``, ``message_id`` and the JSON payload at ``level``.

    Example::

        relay = OutboxRelay(outbox, LoggingPublisher())
    """

    #: ``messaging.system`` of the relay's publish spans and metrics.
    messaging_system = "logging"

    def __init__(self, logger: logging.Logger | None = None, *, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("cqrs_ddd.outbox.published")
        self.level = level

    async def publish(self, message: OutboxMessage) -> None:
        self.logger.log(
            self.level,
            "publish %s %s %s",
            message.event_type,
            message.message_id,
            encode_body(message).decode(),
        )
