"""Ports: the small protocols adapters implement."""

from cqrs_ddd_core.ports.event_store import ExpectedVersion as ExpectedVersion
from cqrs_ddd_core.ports.event_store import IEventStore as IEventStore
from cqrs_ddd_core.ports.event_store import StoredEvent as StoredEvent
from cqrs_ddd_core.ports.event_store import StreamState as StreamState
from cqrs_ddd_core.ports.inbox import IInbox as IInbox
from cqrs_ddd_core.ports.outbox import IOutboxStorage as IOutboxStorage
from cqrs_ddd_core.ports.outbox import OutboxMessage as OutboxMessage
from cqrs_ddd_core.ports.publisher import IMessagePublisher as IMessagePublisher
from cqrs_ddd_core.ports.repository import IRepository as IRepository
from cqrs_ddd_core.ports.search_result import SearchResult as SearchResult
from cqrs_ddd_core.ports.unit_of_work import AfterCommitHook as AfterCommitHook
from cqrs_ddd_core.ports.unit_of_work import IUnitOfWork as IUnitOfWork
