"""Core persistence: unit of work, repository, event store, outbox, mapper."""

from cqrs_ddd_persistence_sqlalchemy.core.session import SessionSource as SessionSource
from cqrs_ddd_persistence_sqlalchemy.core.unit_of_work import EventSink as EventSink
from cqrs_ddd_persistence_sqlalchemy.core.unit_of_work import (
    SQLAlchemyUnitOfWork as SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.core.unit_of_work import current_uow as current_uow
from cqrs_ddd_persistence_sqlalchemy.core.outbox import OutboxClaim as OutboxClaim
from cqrs_ddd_persistence_sqlalchemy.core.outbox import (
    SQLAlchemyOutboxStorage as SQLAlchemyOutboxStorage,
)
from cqrs_ddd_persistence_sqlalchemy.core.outbox_table import outbox_table as outbox_table
