"""Outbox messages and outbox rows: the mapping both ways, and a leased message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.queue import DONE, Claim

__all__ = ["OutboxClaim", "message_of_event", "to_message", "to_row"]


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    """A leased outbox message: the message and the queue claim (id + fencing token)."""

    message: OutboxMessage
    claim: Claim

    @property
    def message_id(self) -> str:
        return self.message.message_id


def message_of_event(event: DomainEvent) -> OutboxMessage:
    """The outbox message of a domain event (``tenant_id`` from its metadata)."""
    tenant = event.metadata.get("tenant_id")
    return OutboxMessage.from_domain_event(event, tenant_id=None if tenant is None else str(tenant))


def to_row(m: OutboxMessage, now: datetime) -> dict[str, Any]:
    """The outbox row of ``m``, due ``now``."""
    if m.created_at.tzinfo is None:
        raise ConfigurationError(f"OutboxMessage {m.message_id}: created_at must be aware")
    return {
        "available_at": now,
        "message_id": m.message_id,
        "event_type": m.event_type,
        "payload": m.payload,
        "metadata": m.metadata,
        "created_at": m.created_at,
        "correlation_id": m.correlation_id,
        "causation_id": m.causation_id,
        "tenant_id": m.tenant_id,
        "partition_key": m.partition_key,
    }


def to_message(row: Mapping[str, Any]) -> OutboxMessage:
    """The message of an outbox row (published, failed or pending)."""
    return OutboxMessage(
        message_id=row["message_id"],
        event_type=row["event_type"],
        payload=row["payload"] or {},
        metadata=row["metadata"] or {},
        created_at=row["created_at"],
        published_at=row["finished_at"] if row["status"] == DONE else None,
        error=row["last_error"],
        retry_count=row["attempts"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        tenant_id=row["tenant_id"],
        partition_key=row["partition_key"],
    )
