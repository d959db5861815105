"""``IMessagePublisher`` adapters for the outbox relay.

``memory`` and ``logging`` have no dependencies and are exported here. The broker adapters are
imported from their modules so that their client libraries stay optional::

    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher  # [rabbitmq]
    from cqrs_ddd_persistence_sqlalchemy.publishers.nats import NatsJetStreamPublisher  # [nats]
    from cqrs_ddd_persistence_sqlalchemy.publishers.redis import RedisStreamPublisher  # [redis]
"""

from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import encode_body as encode_body
from cqrs_ddd_persistence_sqlalchemy.publishers.envelope import headers_of as headers_of
from cqrs_ddd_persistence_sqlalchemy.publishers.logging import LoggingPublisher as LoggingPublisher
from cqrs_ddd_persistence_sqlalchemy.publishers.memory import InMemoryPublisher as InMemoryPublisher

__all__ = ["InMemoryPublisher", "LoggingPublisher", "encode_body", "headers_of"]
