"""The event store: append-only streams, a commit-safe global log, event-sourced aggregates.

- :mod:`.store` — ``SQLAlchemyEventStore`` (appends in :mod:`.appending`, the global log in
  :mod:`.global_log`);
- :mod:`.mapping` — rows to ``StoredEvent`` / typed events, by field name;
- :mod:`.sourced` — ``EventSourcedRepository`` (aggregates rebuilt from their streams, with
  snapshots).
"""

from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import Ordering as Ordering
from cqrs_ddd_persistence_sqlalchemy.eventstore.sourced import (
    EventSourcedRepository as EventSourcedRepository,
)
from cqrs_ddd_persistence_sqlalchemy.eventstore.store import (
    SQLAlchemyEventStore as SQLAlchemyEventStore,
)

__all__ = ["EventSourcedRepository", "Ordering", "SQLAlchemyEventStore"]
