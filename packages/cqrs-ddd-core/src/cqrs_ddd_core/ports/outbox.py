"""Outbox port and the outbox message record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cqrs_ddd_core.domain.events import DomainEvent, new_id, utc_now
from cqrs_ddd_core.ports.drafts import draft_class, object_setattr
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

    # Hand-written and filled as a draft, as ``StoredEvent.__init__`` (see ``drafts``): the
    # seed's command builds its messages per request.
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
        payload = {} if payload is None else payload
        message_id = new_id() if message_id is None else message_id
        metadata = {} if metadata is None else metadata
        created_at = utc_now() if created_at is None else created_at
        if type(self) is not OutboxMessage:
            values = (event_type, payload, message_id, metadata, created_at, published_at,
                      error, retry_count, correlation_id, causation_id, tenant_id,
                      partition_key)  # fmt: skip
            for name, value in zip(OutboxMessage.__slots__, values, strict=True):
                object_setattr(self, name, value)
            return
        draft: Any = self
        object_setattr(draft, "__class__", _Draft)
        draft.event_type = event_type
        draft.payload = payload
        draft.message_id = message_id
        draft.metadata = metadata
        draft.created_at = created_at
        draft.published_at = published_at
        draft.error = error
        draft.retry_count = retry_count
        draft.correlation_id = correlation_id
        draft.causation_id = causation_id
        draft.tenant_id = tenant_id
        draft.partition_key = partition_key
        draft.__class__ = OutboxMessage

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


_Draft = draft_class(OutboxMessage)


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
