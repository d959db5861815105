"""The durable-queue primitive: one claim/lease/retry/dead-letter engine for every queue table.

See ``README.md`` next to this file. Used by the outbox, background jobs, scheduled commands
and saga recovery.
"""

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Pin as Pin
from cqrs_ddd_persistence_sqlalchemy.queue.backoff import Backoff as Backoff
from cqrs_ddd_persistence_sqlalchemy.queue.claims import Claim as Claim
from cqrs_ddd_persistence_sqlalchemy.queue.claims import Outcome as Outcome
from cqrs_ddd_persistence_sqlalchemy.queue.claims import QueueStats as QueueStats
from cqrs_ddd_persistence_sqlalchemy.queue.durable import DurableQueue as DurableQueue
from cqrs_ddd_persistence_sqlalchemy.tables.queue import DEAD as DEAD
from cqrs_ddd_persistence_sqlalchemy.tables.queue import DONE as DONE
from cqrs_ddd_persistence_sqlalchemy.tables.queue import PENDING as PENDING
from cqrs_ddd_persistence_sqlalchemy.tables.queue import PENDING_SQL as PENDING_SQL
from cqrs_ddd_persistence_sqlalchemy.tables.queue import queue_columns as queue_columns
from cqrs_ddd_persistence_sqlalchemy.tables.queue import queue_indexes as queue_indexes

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
