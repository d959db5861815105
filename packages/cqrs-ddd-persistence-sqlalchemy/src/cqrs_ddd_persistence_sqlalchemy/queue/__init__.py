"""The durable-queue primitive: one claim/lease/retry/dead-letter engine for every queue table.

See ``README.md`` next to this file. Used by the outbox (``core.outbox``) and meant for
background jobs, scheduled commands and saga recovery.
"""

from cqrs_ddd_persistence_sqlalchemy.queue.backoff import Backoff as Backoff
from cqrs_ddd_persistence_sqlalchemy.queue.columns import DEAD as DEAD
from cqrs_ddd_persistence_sqlalchemy.queue.columns import DONE as DONE
from cqrs_ddd_persistence_sqlalchemy.queue.columns import PENDING as PENDING
from cqrs_ddd_persistence_sqlalchemy.queue.columns import PENDING_SQL as PENDING_SQL
from cqrs_ddd_persistence_sqlalchemy.queue.columns import queue_columns as queue_columns
from cqrs_ddd_persistence_sqlalchemy.queue.columns import queue_indexes as queue_indexes
from cqrs_ddd_persistence_sqlalchemy.queue.durable import Claim as Claim
from cqrs_ddd_persistence_sqlalchemy.queue.durable import DurableQueue as DurableQueue
from cqrs_ddd_persistence_sqlalchemy.queue.durable import Outcome as Outcome
from cqrs_ddd_persistence_sqlalchemy.queue.durable import Pin as Pin
from cqrs_ddd_persistence_sqlalchemy.queue.durable import QueueStats as QueueStats

__all__ = [
    "DEAD",
    "DONE",
    "PENDING",
    "PENDING_SQL",
    "Backoff",
    "Claim",
    "DurableQueue",
    "Outcome",
    "Pin",
    "QueueStats",
    "queue_columns",
    "queue_indexes",
]
