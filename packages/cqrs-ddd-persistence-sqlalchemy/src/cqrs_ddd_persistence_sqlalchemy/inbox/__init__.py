"""The inbox: which messages each consumer has handled (the idempotent-consumer record).

See ``core/OUTBOX.md``, "Exactly-once effects".
"""

from cqrs_ddd_persistence_sqlalchemy.inbox.store import SQLAlchemyInbox as SQLAlchemyInbox

__all__ = ["SQLAlchemyInbox"]
