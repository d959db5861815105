"""Publishers against the real brokers on this machine (RabbitMQ, NATS JetStream, Redis)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cqrs_ddd_core.ports import IMessagePublisher
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher, LoggingPublisher

AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("CQRS_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("CQRS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def message(**kw: object) -> OutboxMessage:
    return OutboxMessage(
        event_type="OrderPlaced",
        payload={"total": Decimal("12.50"), "at": datetime(2026, 1, 1, tzinfo=UTC)},
        correlation_id="corr-1",
        partition_key="order-1",
        metadata={"k": "v"},
        **kw,  # type: ignore[arg-type]
    )


def test_every_publisher_satisfies_the_port() -> None:
    assert isinstance(InMemoryPublisher(), IMessagePublisher)
    assert isinstance(LoggingPublisher(), IMessagePublisher)


# -- RabbitMQ ---------------------------------------------------------------------------------
@pytest.fixture
async def amqp() -> AsyncIterator[object]:
    aio_pika = pytest.importorskip("aio_pika")
    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    try:
        yield conn
    finally:
        await conn.close()


async def test_rabbitmq_publishes_with_confirm_and_message_id(amqp: object) -> None:
    import aio_pika

    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

    exchange = f"test.outbox.{uuid.uuid4().hex[:8]}"
    channel = await amqp.channel()  # type: ignore[attr-defined]
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(ex, routing_key="#")
    m = message()
    try:
        async with RabbitMQPublisher(AMQP_URL, exchange=exchange) as publisher:
            await publisher.publish(m)
        incoming = await queue.get(timeout=5)
        await incoming.ack()
        assert incoming.message_id == m.message_id
        assert incoming.type == "OrderPlaced"
        assert incoming.correlation_id == "corr-1"
        assert incoming.headers["message_id"] == m.message_id
        assert incoming.headers["partition_key"] == "order-1"
        assert json.loads(incoming.body) == {"total": "12.50", "at": "2026-01-01T00:00:00+00:00"}
    finally:
        await ex.delete()
        await channel.close()


async def test_rabbitmq_refusal_raises(amqp: object) -> None:
    """A full queue with ``reject-publish`` nacks the publish; unroutable is an error too."""
    import aio_pika
    from aio_pika.exceptions import DeliveryError, PublishError

    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

    exchange = f"test.outbox.{uuid.uuid4().hex[:8]}"
    channel = await amqp.channel()  # type: ignore[attr-defined]
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(
        exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await queue.bind(ex, routing_key="OrderPlaced")
    try:
        async with RabbitMQPublisher(
            AMQP_URL, exchange=exchange, exchange_type="direct"
        ) as publisher:
            with pytest.raises(DeliveryError):
                await publisher.publish(message())
            with pytest.raises((PublishError, DeliveryError)):
                await publisher.publish(OutboxMessage(event_type="NobodyListens", payload={"x": 1}))
    finally:
        await ex.delete()
        await channel.close()


# -- NATS JetStream ---------------------------------------------------------------------------
async def test_nats_jetstream_acked_publish_deduplicates_by_message_id() -> None:
    nats = pytest.importorskip("nats")
    try:
        nc = await asyncio.wait_for(nats.connect(NATS_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"NATS unreachable: {exc}")
    from cqrs_ddd_persistence_sqlalchemy.publishers.nats import NatsJetStreamPublisher

    suffix = uuid.uuid4().hex[:8]
    stream, prefix = f"T_OUTBOX_{suffix}", f"t_outbox_{suffix}"
    js = nc.jetstream()
    m = message()
    try:
        async with NatsJetStreamPublisher(
            NATS_URL, subject_prefix=prefix, stream=stream, create_stream=True
        ) as publisher:
            await publisher.publish(m)
            await publisher.publish(m)  # a relay retry: JetStream drops the duplicate
            await publisher.publish(message())
        info = await js.stream_info(stream)
        assert info.state.messages == 2
        sub = await js.pull_subscribe(f"{prefix}.>", durable=None, stream=stream)
        [first, _second] = await sub.fetch(2, timeout=5)
        assert first.subject == f"{prefix}.OrderPlaced"
        assert first.headers is not None and first.headers["Nats-Msg-Id"] == m.message_id
        assert json.loads(first.data)["total"] == "12.50"
        # A stream that does not exist: the publish is refused, the relay retries later.
        async with NatsJetStreamPublisher(NATS_URL, subject_prefix=f"nowhere_{suffix}") as bad:
            with pytest.raises(Exception):  # noqa: B017 - nats raises NoRespondersError
                await bad.publish(message())
    finally:
        await js.delete_stream(stream)
        await nc.close()


# -- Redis Streams ----------------------------------------------------------------------------
async def test_redis_stream_xadd_carries_message_id() -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        await client.aclose()
        pytest.skip(f"Redis unreachable: {exc}")
    from cqrs_ddd_persistence_sqlalchemy.publishers.redis import RedisStreamPublisher

    stream = f"test:outbox:{uuid.uuid4().hex[:8]}"
    m = message()
    try:
        async with RedisStreamPublisher(client=client, stream_name=stream, maxlen=1000) as pub:
            await pub.publish(m)
        [(_entry_id, fields)] = await client.xrange(stream)
        assert fields[b"message_id"] == m.message_id.encode()
        assert fields[b"event_type"] == b"OrderPlaced"
        assert json.loads(fields[b"payload"])["total"] == "12.50"
    finally:
        await client.delete(stream)
        await client.aclose()
