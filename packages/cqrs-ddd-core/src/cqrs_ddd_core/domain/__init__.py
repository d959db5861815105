"""Domain primitives: aggregates, entities, value objects and events."""

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot as AggregateRoot
from cqrs_ddd_core.domain.aggregate_root import get_persisted_version as get_persisted_version
from cqrs_ddd_core.domain.aggregate_root import set_persisted_version as set_persisted_version
from cqrs_ddd_core.domain.entity import Entity as Entity
from cqrs_ddd_core.domain.entity import ValueObject as ValueObject
from cqrs_ddd_core.domain.event_registry import EventTypeRegistry as EventTypeRegistry
from cqrs_ddd_core.domain.event_registry import Upcaster as Upcaster
from cqrs_ddd_core.domain.event_registry import default_registry as default_registry
from cqrs_ddd_core.domain.events import DomainEvent as DomainEvent
from cqrs_ddd_core.domain.events import utc_now as utc_now
