"""In-memory adapters: fakes with the same semantics as the SQL adapters."""

from cqrs_ddd_core.adapters.memory.event_store import InMemoryEventStore as InMemoryEventStore
from cqrs_ddd_core.adapters.memory.inbox import InMemoryInbox as InMemoryInbox
from cqrs_ddd_core.adapters.memory.outbox import InMemoryOutboxStorage as InMemoryOutboxStorage
from cqrs_ddd_core.adapters.memory.repository import InMemoryRepository as InMemoryRepository
from cqrs_ddd_core.adapters.memory.search_result import ListSearchResult as ListSearchResult
from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork as InMemoryUnitOfWork
