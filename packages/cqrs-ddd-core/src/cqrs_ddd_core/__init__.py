"""cqrs-ddd-core: domain primitives, ports, the error tree and in-memory adapters."""

from cqrs_ddd_core import errors as errors
from cqrs_ddd_core.domain import AggregateRoot as AggregateRoot
from cqrs_ddd_core.domain import DomainEvent as DomainEvent
from cqrs_ddd_core.domain import Entity as Entity
from cqrs_ddd_core.domain import EventTypeRegistry as EventTypeRegistry
from cqrs_ddd_core.domain import ValueObject as ValueObject
from cqrs_ddd_core.domain import default_registry as default_registry
from cqrs_ddd_core.errors import ConcurrencyError as ConcurrencyError
from cqrs_ddd_core.errors import CQRSDDDError as CQRSDDDError
from cqrs_ddd_core.errors import MappingError as MappingError
from cqrs_ddd_core.errors import NotFoundError as NotFoundError
from cqrs_ddd_core.errors import OptimisticConcurrencyError as OptimisticConcurrencyError
from cqrs_ddd_core.errors import PersistenceError as PersistenceError
from cqrs_ddd_core.ports import ExpectedVersion as ExpectedVersion
from cqrs_ddd_core.ports import IEventStore as IEventStore
from cqrs_ddd_core.ports import IInbox as IInbox
from cqrs_ddd_core.ports import IOutboxStorage as IOutboxStorage
from cqrs_ddd_core.ports import IRepository as IRepository
from cqrs_ddd_core.ports import IUnitOfWork as IUnitOfWork
from cqrs_ddd_core.ports import OutboxMessage as OutboxMessage
from cqrs_ddd_core.ports import SearchResult as SearchResult
from cqrs_ddd_core.ports import StoredEvent as StoredEvent
from cqrs_ddd_core.ports import StreamState as StreamState

__version__ = "0.1.0"
