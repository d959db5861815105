"""How an outbox message travels: JSON body (the payload), identity in headers."""

from __future__ import annotations

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps

__all__ = ["encode_body", "headers_of"]


def encode_body(message: OutboxMessage) -> bytes:
    """The payload as UTF-8 JSON (library codec: datetimes, Decimals, UUIDs...)."""
    return json_dumps(message.payload).encode()


def headers_of(message: OutboxMessage) -> dict[str, str]:
    """String headers: ``message_id`` (for consumer deduplication), ``event_type``, the
    correlation / causation / tenant / partition ids when set, ``created_at`` and, JSON-encoded,
    ``metadata`` when not empty."""
    headers = {
        "message_id": message.message_id,
        "event_type": message.event_type,
        "created_at": message.created_at.isoformat(),
    }
    optional = {
        "correlation_id": message.correlation_id,
        "causation_id": message.causation_id,
        "tenant_id": message.tenant_id,
        "partition_key": message.partition_key,
    }
    headers.update({k: v for k, v in optional.items() if v is not None})
    if message.metadata:
        headers["metadata"] = json_dumps(message.metadata)
    return headers
