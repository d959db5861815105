"""Outbox port and the outbox message record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol

from cqrs_ddd_core.domain.events import DomainEvent, new_id, utc_now
from cqrs_ddd_core.ports.unit_of_work import IUnitOfWork

__all__ = ["IOutboxStorage", "OutboxMessage"]


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class OutboxMessage:
    """A message to publish once the transaction that wrote it has committed.

    ``partition_key`` (e.g. the aggregate id) orders messages of one key when per-key ordering
    is enabled on the relay. ``payload`` and ``metadata`` default to new empty dicts,
    ``message_id`` to a new UUID4 text and ``created_at`` to the current UTC time (``None`` for
    any of them means the same).
    """

    event_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    message_id: str = field(default_factory=new_id)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)
    published_at: datetime | None = None
    error: str | None = None
    retry_count: int = 0
    correlation_id: str | None = None
    causation_id: str | None = None
    tenant_id: str | None = None
    partition_key: str | None = None

    # Hand-written, as ``StoredEvent.__init__`` (see there): the seed's command builds its
    # messages per request, and the generated one pays ``object.__setattr__`` per field.
    def __init__(
        self,
        *,
        event_type: str,
        payload: dict[str, Any] | None = None,
        message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        published_at: datetime | None = None,
        error: str | None = None,
        retry_count: int = 0,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        tenant_id: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        _set_event_type(self, event_type)
        _set_payload(self, {} if payload is None else payload)
        _set_message_id(self, new_id() if message_id is None else message_id)
        _set_metadata(self, {} if metadata is None else metadata)
        _set_created_at(self, utc_now() if created_at is None else created_at)
        _set_published_at(self, published_at)
        _set_error(self, error)
        _set_retry_count(self, retry_count)
        _set_correlation_id(self, correlation_id)
        _set_causation_id(self, causation_id)
        _set_tenant_id(self, tenant_id)
        _set_partition_key(self, partition_key)

    @classmethod
    def from_domain_event(
        cls, event: DomainEvent, *, tenant_id: str | None = None
    ) -> OutboxMessage:
        return cls(
            message_id=event.event_id,
            event_type=event.event_type,
            payload=event.model_dump(mode="json"),
            metadata=dict(event.metadata),
            created_at=event.occurred_at,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            tenant_id=tenant_id,
            partition_key=event.aggregate_id,
        )


# The slots' own descriptors: they store without going through the frozen ``__setattr__``.
(
    _set_event_type,
    _set_payload,
    _set_message_id,
    _set_metadata,
    _set_created_at,
    _set_published_at,
    _set_error,
    _set_retry_count,
    _set_correlation_id,
    _set_causation_id,
    _set_tenant_id,
    _set_partition_key,
) = (OutboxMessage.__dict__[f.name].__set__ for f in fields(OutboxMessage))


class IOutboxStorage(Protocol):
    """Messages written in the business transaction, published later by a relay."""

    async def save_messages(
        self, messages: Sequence[OutboxMessage], *, uow: IUnitOfWork | None = None
    ) -> None: ...

    async def get_pending(self, limit: int = 100) -> list[OutboxMessage]:
        """Pending messages, leased to the caller so that concurrent callers never share one."""
        ...

    async def mark_published(self, message_ids: Sequence[str]) -> None: ...

    async def mark_failed(self, message_id: str, error: str) -> None:
        """Record a failed attempt; the message is retried after a backoff or dead-lettered."""
        ...
