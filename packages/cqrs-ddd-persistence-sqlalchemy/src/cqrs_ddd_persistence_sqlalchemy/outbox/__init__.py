"""The transactional outbox: messages written in the business transaction, published by relays.

See ``core/OUTBOX.md``; users import these names from the ``core`` facade.
"""

from cqrs_ddd_persistence_sqlalchemy.outbox.relay import OutboxRelay as OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.outbox.relay import RelayMetrics as RelayMetrics
from cqrs_ddd_persistence_sqlalchemy.outbox.storage import DEFAULT_CHANNEL as DEFAULT_CHANNEL
from cqrs_ddd_persistence_sqlalchemy.outbox.storage import OutboxClaim as OutboxClaim
from cqrs_ddd_persistence_sqlalchemy.outbox.storage import (
    SQLAlchemyOutboxStorage as SQLAlchemyOutboxStorage,
)
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table as outbox_table

__all__ = [
    "DEFAULT_CHANNEL",
    "OutboxClaim",
    "OutboxRelay",
    "RelayMetrics",
    "SQLAlchemyOutboxStorage",
    "outbox_table",
]
