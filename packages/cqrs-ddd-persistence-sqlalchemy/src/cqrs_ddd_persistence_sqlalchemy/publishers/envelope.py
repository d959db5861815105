"""How an outbox message travels: JSON body (the payload), identity in headers."""

from __future__ import annotations

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps

__all__ = ["TRACE_CONTEXT_KEYS", "encode_body", "headers_of"]

#: W3C trace-context keys lifted from ``message.metadata`` into headers of their own, where
#: consumers' tracing instrumentation looks for them.
TRACE_CONTEXT_KEYS = ("traceparent", "tracestate", "baggage")


def encode_body(message: OutboxMessage) -> bytes:
    """The payload as UTF-8 JSON (library codec: datetimes, Decimals, UUIDs...)."""
    return json_dumps(message.payload).encode()


def headers_of(message: OutboxMessage) -> dict[str, str]:
    """String headers: ``message_id`` (for consumer deduplication), ``event_type``, the
    correlation / causation / tenant / partition ids when set, ``created_at``, the W3C trace
    context (``traceparent``, ``tracestate``, ``baggage``) when the metadata has it, and,
    JSON-encoded, ``metadata`` when not empty."""
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
        for name in TRACE_CONTEXT_KEYS:
            value = message.metadata.get(name)
            if isinstance(value, str):
                headers[name] = value
    return headers
