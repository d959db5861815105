"""Event store port and the stored-event record."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from cqrs_ddd_core.domain.events import DomainEvent, new_id, utc_now
from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_core.ports.drafts import draft_class, object_setattr
from cqrs_ddd_core.ports.unit_of_work import IUnitOfWork

__all__ = [
    "ExpectedVersion",
    "IEventStore",
    "StoredEvent",
    "StreamState",
]


class StreamState(enum.Enum):
    """Expected stream states for appends that do not name an exact version."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


#: ``StreamState`` or an exact version (the version of the stream's last event; 0 = empty).
ExpectedVersion = StreamState | int


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class StoredEvent:
    """An event as the event store keeps it.

    ``version`` is the event's position in its stream (1-based); ``None`` lets the store assign
    the next one. ``position`` is the global position, set by the store. ``payload`` and
    ``metadata`` default to new empty dicts, ``event_id`` to a new UUID4 text and
    ``occurred_at`` to the current UTC time (``None`` for any of them means the same).
    """

    event_type: str
    aggregate_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_id)
    aggregate_type: str | None = None
    version: int | None = None
    schema_version: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=utc_now)
    correlation_id: str | None = None
    causation_id: str | None = None
    tenant_id: str | None = None
    position: int | None = None

    # Hand-written: a frozen dataclass's generated __init__ pays ``object.__setattr__`` per
    # field. Appends and reads build one record per event and appends hand back a positioned
    # copy of each, so this is on every hot path of the store: filled as a draft (see
    # ``drafts``).
    def __init__(
        self,
        *,
        event_type: str,
        aggregate_id: str,
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
        aggregate_type: str | None = None,
        version: int | None = None,
        schema_version: int = 1,
        metadata: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        tenant_id: str | None = None,
        position: int | None = None,
    ) -> None:
        payload = {} if payload is None else payload
        event_id = new_id() if event_id is None else event_id
        metadata = {} if metadata is None else metadata
        occurred_at = utc_now() if occurred_at is None else occurred_at
        if type(self) is not StoredEvent:
            values = (event_type, aggregate_id, payload, event_id, aggregate_type, version,
                      schema_version, metadata, occurred_at, correlation_id, causation_id,
                      tenant_id, position)  # fmt: skip
            for name, value in zip(StoredEvent.__slots__, values, strict=True):
                object_setattr(self, name, value)
            return
        draft: Any = self
        object_setattr(draft, "__class__", _Draft)
        draft.event_type = event_type
        draft.aggregate_id = aggregate_id
        draft.payload = payload
        draft.event_id = event_id
        draft.aggregate_type = aggregate_type
        draft.version = version
        draft.schema_version = schema_version
        draft.metadata = metadata
        draft.occurred_at = occurred_at
        draft.correlation_id = correlation_id
        draft.causation_id = causation_id
        draft.tenant_id = tenant_id
        draft.position = position
        draft.__class__ = StoredEvent

    def positioned(self, version: int, position: int) -> StoredEvent:
        """A copy with the stream ``version`` and global ``position`` the store assigned.

        Example:
            >>> stored = event.positioned(1, 42)
        """
        if type(self) is not StoredEvent:
            # A subclass: StoredEvent's fields, past the frozen __setattr__ (as ``__init__``).
            copy = _new(type(self))
            for name in StoredEvent.__slots__:
                object_setattr(copy, name, getattr(self, name))
            object_setattr(copy, "version", version)
            object_setattr(copy, "position", position)
            return copy
        new: Any = _new(_Draft)
        new.event_type = self.event_type
        new.aggregate_id = self.aggregate_id
        new.payload = self.payload
        new.event_id = self.event_id
        new.aggregate_type = self.aggregate_type
        new.version = version
        new.schema_version = self.schema_version
        new.metadata = self.metadata
        new.occurred_at = self.occurred_at
        new.correlation_id = self.correlation_id
        new.causation_id = self.causation_id
        new.tenant_id = self.tenant_id
        new.position = position
        new.__class__ = StoredEvent
        return cast("StoredEvent", new)

    @classmethod
    def from_domain_event(
        cls, event: DomainEvent, *, version: int | None = None, tenant_id: str | None = None
    ) -> StoredEvent:
        """Wrap a ``DomainEvent`` (its own fields become the payload).

        Raises:
            InvalidValueError: the event has no ``aggregate_id`` (no stream to append it to).
                It is the error tree's invalid-input class and also a ``ValueError``, so
                callers catching either keep working.

        Example:
            >>> StoredEvent.from_domain_event(Deposited(amount=5, aggregate_id="acc-1"))
        """
        if event.aggregate_id is None:
            raise InvalidValueError(
                f"{event.event_type} has no aggregate_id: it cannot be stored in a stream",
                path="aggregate_id",
            )
        return cls(
            event_id=event.event_id,
            event_type=event.event_type,
            aggregate_id=event.aggregate_id,
            aggregate_type=event.aggregate_type,
            version=version,
            schema_version=event.version,
            payload=event.payload(),
            metadata=dict(event.metadata),
            occurred_at=event.occurred_at,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            tenant_id=tenant_id,
        )

    def envelope(self) -> dict[str, Any]:
        """The fields a ``DomainEvent`` takes from the record rather than the payload."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "metadata": self.metadata,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }


_new = object.__new__
_Draft = draft_class(StoredEvent)


class IEventStore(Protocol):
    """Append-only streams of events with a global, commit-ordered log."""

    async def append(
        self,
        events: StoredEvent | Sequence[StoredEvent],
        *,
        expected_version: ExpectedVersion = StreamState.ANY,
        uow: IUnitOfWork | None = None,
    ) -> list[StoredEvent]:
        """Append to one stream; returns the events with ``version`` and ``position`` set."""
        ...

    async def get_events(
        self,
        aggregate_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        uow: IUnitOfWork | None = None,
    ) -> list[StoredEvent]: ...

    async def get_version(self, aggregate_id: str, *, uow: IUnitOfWork | None = None) -> int:
        """The version of the stream's last event (0 when the stream does not exist)."""
        ...

    async def read_all(
        self, *, after: str | None = None, limit: int = 1000
    ) -> tuple[list[StoredEvent], str | None]:
        """Committed events after the opaque cursor ``after``, and the cursor to continue from."""
        ...

    def subscribe(self, *, after: str | None = None) -> AsyncIterator[StoredEvent]: ...
