"""Broker consumer loops with the inbox: each message's effects exactly once.

The mirror of :mod:`~cqrs_ddd_persistence_sqlalchemy.publishers`: a loop per broker reads a
message, runs your handler in a ``SQLAlchemyUnitOfWork`` together with the ``SQLAlchemyInbox``
record of its id, commits, and only then acknowledges (or commits the offset). The shared
pieces are exported here; the broker loops are imported from their modules so that their
client libraries stay optional::

    from cqrs_ddd_persistence_sqlalchemy.consumers.kafka import KafkaInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.consumers.rabbitmq import RabbitMQInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.consumers.nats import NatsInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.consumers.redis import RedisStreamInboxConsumer

(extras ``kafka``, ``rabbitmq``, ``nats``, ``redis``). See ``core/OUTBOX.md``, "Exactly-once
effects".
"""

from cqrs_ddd_persistence_sqlalchemy.consumers.base import ConsumerMetrics as ConsumerMetrics
from cqrs_ddd_persistence_sqlalchemy.consumers.base import Handler as Handler
from cqrs_ddd_persistence_sqlalchemy.consumers.base import InboxConsumer as InboxConsumer
from cqrs_ddd_persistence_sqlalchemy.consumers.base import Outcome as Outcome
from cqrs_ddd_persistence_sqlalchemy.consumers.base import ReceivedMessage as ReceivedMessage
from cqrs_ddd_persistence_sqlalchemy.consumers.base import inbox_key as inbox_key

__all__ = [
    "ConsumerMetrics",
    "Handler",
    "InboxConsumer",
    "Outcome",
    "ReceivedMessage",
    "inbox_key",
]
