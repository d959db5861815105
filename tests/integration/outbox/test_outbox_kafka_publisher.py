"""KafkaPublisher against a real Kafka-protocol broker (Tansu, see tests/kafka_broker.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports import IMessagePublisher
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import OutboxRelay, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.publishers.kafka import KafkaPublisher

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _topic() -> str:
    return f"test-outbox-{uuid.uuid4().hex[:10]}"


def message(**kw: Any) -> OutboxMessage:
    fields: dict[str, Any] = {
        "event_type": "OrderPlaced",
        "payload": {"total": Decimal("12.50"), "at": datetime(2026, 1, 1, tzinfo=UTC)},
        "correlation_id": "corr-1",
        "partition_key": "order-1",
        "metadata": {"k": "v", "traceparent": TRACEPARENT},
    }
    fields.update(kw)
    return OutboxMessage(**fields)


async def consume(bootstrap: str, topic: str, count: int, within: float = 30) -> list[Any]:
    """Every record of ``topic`` until ``count`` arrived (no group: no join to wait for)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + within
    try:
        while len(records) < count:
            assert time.monotonic() < deadline, f"only {len(records)}/{count} arrived"
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def test_kafka_publisher_satisfies_the_port() -> None:
    assert isinstance(KafkaPublisher(), IMessagePublisher)


async def test_kafka_publishes_keyed_record_with_headers(kafka_bootstrap: str) -> None:
    topic = _topic()
    m = message()
    async with KafkaPublisher(kafka_bootstrap, topic=topic) as publisher:
        await publisher.publish(m)
    [record] = await consume(kafka_bootstrap, topic, 1)
    headers = {k: v.decode() for k, v in record.headers}
    assert record.key == b"order-1"
    assert headers["message_id"] == m.message_id
    assert headers["event_type"] == "OrderPlaced"
    assert headers["correlation_id"] == "corr-1"
    assert headers["partition_key"] == "order-1"
    assert headers["traceparent"] == m.metadata["traceparent"]
    assert json.loads(headers["metadata"])["k"] == "v"
    assert json.loads(record.value) == {"total": "12.50", "at": "2026-01-01T00:00:00+00:00"}


async def test_kafka_topic_is_the_event_type_or_a_function(kafka_bootstrap: str) -> None:
    event_type = f"Evt{uuid.uuid4().hex[:8]}"
    prefix = _topic()
    by_type = message(event_type=event_type, partition_key=None)
    by_function = message(event_type="Other")
    async with KafkaPublisher(kafka_bootstrap) as publisher:
        await publisher.publish(by_type)
    async with KafkaPublisher(kafka_bootstrap, topic=lambda m: f"{prefix}.{m.event_type}") as p:
        await p.publish(by_function)
    [first] = await consume(kafka_bootstrap, event_type, 1)
    [second] = await consume(kafka_bootstrap, f"{prefix}.Other", 1)
    assert first.key is None  # no partition key: spread by the client
    assert dict(first.headers)["message_id"] == by_type.message_id.encode()
    assert dict(second.headers)["message_id"] == by_function.message_id.encode()


async def test_kafka_idempotence_falls_back_with_a_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Tansu refuses idempotent producers: the default falls back and says so once."""
    caplog.set_level(logging.WARNING, logger="cqrs_ddd_persistence_sqlalchemy.publishers.kafka")
    topic = _topic()
    async with KafkaPublisher(kafka_bootstrap, topic=topic) as publisher:
        assert publisher.idempotent is False
        await publisher.publish(message())
    warnings = [r for r in caplog.records if "refused an idempotent producer" in r.message]
    assert len(warnings) == 1
    assert len(await consume(kafka_bootstrap, topic, 1)) == 1


async def test_kafka_idempotence_required_is_a_configuration_error(kafka_bootstrap: str) -> None:
    publisher = KafkaPublisher(kafka_bootstrap, idempotence=True)
    with pytest.raises(ConfigurationError, match="refused an idempotent producer"):
        await publisher.connect()
    await publisher.close()


async def test_kafka_unreachable_broker_raises() -> None:
    from tests.kafka_broker import free_port

    publisher = KafkaPublisher(f"127.0.0.1:{free_port()}", idempotence=False)
    with pytest.raises(Exception, match=r"[Uu]nable to bootstrap|connect"):
        await publisher.publish(message())
    await publisher.close()


async def test_kafka_relay_publishes_each_key_in_order(
    kafka_bootstrap: str, library_tables: AsyncEngine
) -> None:
    topic = _topic()
    outbox = SQLAlchemyOutboxStorage(library_tables, ordered_by_key=True)
    messages = [
        OutboxMessage(event_type="Moved", payload={"seq": s}, partition_key=f"agg-{a}")
        for s in range(10)
        for a in range(5)
    ]
    await outbox.save_messages(messages)
    async with KafkaPublisher(kafka_bootstrap, topic=topic) as publisher:
        relay = OutboxRelay(outbox, publisher, batch_size=20, poll_interval=0.05)
        while await relay.run_once():
            pass
    records = await consume(kafka_bootstrap, topic, len(messages))
    per_key: dict[bytes, list[int]] = {}
    for r in records:
        per_key.setdefault(r.key, []).append(json.loads(r.value)["seq"])
    assert per_key == {f"agg-{a}".encode(): list(range(10)) for a in range(5)}
    stats = await outbox.stats()
    assert (stats.done, stats.pending) == (len(messages), 0)
    await asyncio.sleep(0)
