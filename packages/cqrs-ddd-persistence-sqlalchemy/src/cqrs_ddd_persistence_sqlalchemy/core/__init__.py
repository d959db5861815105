"""Core persistence: unit of work, repository, event store, outbox, inbox, mapper."""

from cqrs_ddd_persistence_sqlalchemy.binding import Binding as Binding
from cqrs_ddd_persistence_sqlalchemy.binding import SessionSource as SessionSource
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import Ordering as Ordering
from cqrs_ddd_persistence_sqlalchemy.eventstore import (
    EventSourcedRepository as EventSourcedRepository,
)
from cqrs_ddd_persistence_sqlalchemy.eventstore import (
    SQLAlchemyEventStore as SQLAlchemyEventStore,
)
from cqrs_ddd_persistence_sqlalchemy.inbox import SQLAlchemyInbox as SQLAlchemyInbox
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxClaim as OutboxClaim
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay as OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.outbox import RelayMetrics as RelayMetrics
from cqrs_ddd_persistence_sqlalchemy.outbox import (
    SQLAlchemyOutboxStorage as SQLAlchemyOutboxStorage,
)
from cqrs_ddd_persistence_sqlalchemy.repository import FieldConverter as FieldConverter
from cqrs_ddd_persistence_sqlalchemy.repository import ModelMapper as ModelMapper
from cqrs_ddd_persistence_sqlalchemy.repository import ResultList as ResultList
from cqrs_ddd_persistence_sqlalchemy.repository import (
    SQLAlchemyRepository as SQLAlchemyRepository,
)
from cqrs_ddd_persistence_sqlalchemy.repository import (
    SQLAlchemySearchResult as SQLAlchemySearchResult,
)
from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table as events_table
from cqrs_ddd_persistence_sqlalchemy.tables.inbox import inbox_table as inbox_table
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table as outbox_table
from cqrs_ddd_persistence_sqlalchemy.uow import EventSink as EventSink
from cqrs_ddd_persistence_sqlalchemy.uow import (
    SQLAlchemyUnitOfWork as SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.uow import current_uow as current_uow
