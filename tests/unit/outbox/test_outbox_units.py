"""Outbox pieces that need no database: envelope, publishers, relay configuration."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports import IMessagePublisher
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay, RelayMetrics
from cqrs_ddd_persistence_sqlalchemy.publishers import (
    InMemoryPublisher,
    LoggingPublisher,
    encode_body,
    headers_of,
)


def test_envelope_carries_identity_in_headers() -> None:
    m = OutboxMessage(
        event_type="OrderPlaced",
        payload={"total": Decimal("1.10"), "at": datetime(2026, 1, 1, tzinfo=UTC)},
        correlation_id="c",
        partition_key="order-1",
        metadata={"user": "u"},
    )
    headers = headers_of(m)
    assert headers["message_id"] == m.message_id
    assert headers["event_type"] == "OrderPlaced"
    assert headers["correlation_id"] == "c" and headers["partition_key"] == "order-1"
    assert "causation_id" not in headers and "tenant_id" not in headers
    assert json.loads(headers["metadata"]) == {"user": "u"}
    assert json.loads(encode_body(m)) == {"total": "1.10", "at": "2026-01-01T00:00:00+00:00"}


async def test_in_memory_and_logging_publishers(caplog: pytest.LogCaptureFixture) -> None:
    m = OutboxMessage(event_type="A", payload={"x": 1})
    memory = InMemoryPublisher()
    await memory.publish(m)
    assert memory.ids == [m.message_id]
    refusing = InMemoryPublisher(fail=lambda _m: RuntimeError("no"))
    with pytest.raises(RuntimeError):
        await refusing.publish(m)
    assert refusing.published == []
    caplog.set_level(logging.INFO, logger="cqrs_ddd.outbox.published")
    await LoggingPublisher().publish(m)
    assert m.message_id in caplog.text
    assert isinstance(memory, IMessagePublisher)


def test_relay_configuration() -> None:
    outbox = SQLAlchemyOutboxStorage()
    with pytest.raises(ConfigurationError):
        OutboxRelay(outbox, InMemoryPublisher(), batch_size=0)
    relay = OutboxRelay(outbox, InMemoryPublisher(), batch_size=10)
    assert relay.max_in_flight == 10 and not relay.stopping
    relay.stop()
    assert relay.stopping
    assert RelayMetrics().snapshot()["published"] == 0


def test_outbox_storage_is_an_event_sink() -> None:
    from cqrs_ddd_persistence_sqlalchemy.core import EventSink

    assert isinstance(SQLAlchemyOutboxStorage(), EventSink)
