"""The broker consumer loops with the inbox, against the real brokers on this machine.

For each broker (Kafka, RabbitMQ, NATS JetStream, Redis Streams) and each database: messages
published by the library's publisher — some of them twice, as a relay does after a lost ack —
are consumed by the loop; the handler's effect (a counter per aggregate, written in the
handler's unit of work) counts every distinct message exactly once, the duplicates are
acknowledged and skipped, and a handler failure leaves the message to be redelivered.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.consumers import InboxConsumer, ReceivedMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork, inbox_table
from cqrs_ddd_persistence_sqlalchemy.publishers import encode_body, headers_of
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff

AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("CQRS_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("CQRS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FAST = Backoff(base=0.05, maximum=0.2, jitter=0.0)

counts = Table(
    "inbox_test_counts",
    MetaData(),
    Column("aggregate_id", String(50), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("out_of_order", Integer, nullable=False),
)


async def count_effect(message: ReceivedMessage, uow: SQLAlchemyUnitOfWork) -> None:
    """The handler's effect: +1 on the aggregate's counter, noting any out-of-order seq."""
    key, seq = message.partition_key, int(message.payload["seq"])
    c = counts.c
    row = (await uow.session.execute(select(c.last_seq).where(c.aggregate_id == key))).first()
    if row is None:
        await uow.session.execute(
            insert(counts).values(aggregate_id=key, n=1, last_seq=seq, out_of_order=int(seq != 0))
        )
    else:
        await uow.session.execute(
            update(counts)
            .where(c.aggregate_id == key)
            .values(
                n=c.n + 1, last_seq=seq, out_of_order=c.out_of_order + int(seq != row.last_seq + 1)
            )
        )


MakeConsumer = Callable[..., InboxConsumer]
Publish = Callable[[list[OutboxMessage]], Awaitable[None]]


@dataclass
class Broker:
    publish: Publish
    consumer: MakeConsumer
    #: Whether per-aggregate order survives a handler failure (the loop rewinds).
    keeps_order_on_failure: bool


@pytest.fixture
async def world(library_tables: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with library_tables.begin() as conn:
        await conn.run_sync(counts.metadata.create_all)
    return async_sessionmaker(library_tables, expire_on_commit=False)


# -- brokers --------------------------------------------------------------------------------------
@pytest.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[Broker]:
    from cqrs_ddd_persistence_sqlalchemy.consumers.kafka import KafkaInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.publishers.kafka import KafkaPublisher

    topic = f"test-inbox-{uuid.uuid4().hex[:10]}"
    publisher = KafkaPublisher(kafka_bootstrap, topic=topic)
    await publisher.connect()

    async def publish(messages: list[OutboxMessage]) -> None:
        for m in messages:
            await publisher.publish(m)

    def consumer(handler: Any, sf: Any) -> InboxConsumer:
        return KafkaInboxConsumer(
            handler,
            topics=[topic],
            group_id=f"g-{topic}",
            bootstrap_servers=kafka_bootstrap,
            uow_factory=lambda: SQLAlchemyUnitOfWork(sf),
            poll_timeout=0.2,
            error_backoff=FAST,
            # Joins the group in ~1 s on Tansu instead of ~5 s.
            consumer_options={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300},
        )

    try:
        yield Broker(publish, consumer, keeps_order_on_failure=True)
    finally:
        await publisher.close()


@pytest.fixture
async def rabbitmq() -> AsyncIterator[Broker]:
    aio_pika = pytest.importorskip("aio_pika")
    from cqrs_ddd_persistence_sqlalchemy.consumers.rabbitmq import RabbitMQInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    name = f"test.inbox.{uuid.uuid4().hex[:8]}"
    channel = await conn.channel()
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(exchange, routing_key="#")
    publisher = RabbitMQPublisher(AMQP_URL, exchange=name)
    await publisher.connect()

    async def publish(messages: list[OutboxMessage]) -> None:
        for m in messages:
            await publisher.publish(m)

    def consumer(handler: Any, sf: Any) -> InboxConsumer:
        return RabbitMQInboxConsumer(
            handler,
            queue=name,
            exchange=name,
            url=AMQP_URL,
            uow_factory=lambda: SQLAlchemyUnitOfWork(sf),
            error_backoff=FAST,
        )

    try:
        yield Broker(publish, consumer, keeps_order_on_failure=False)
    finally:
        await publisher.close()
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await channel.close()
        await conn.close()


@pytest.fixture
async def nats_js() -> AsyncIterator[Broker]:
    nats = pytest.importorskip("nats")
    from cqrs_ddd_persistence_sqlalchemy.consumers.nats import NatsInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.publishers.nats import NatsJetStreamPublisher

    try:
        nc = await asyncio.wait_for(nats.connect(NATS_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"NATS unreachable: {exc}")
    suffix = uuid.uuid4().hex[:8]
    stream, prefix = f"INBOX_{suffix}", f"inbox{suffix}"
    publisher = NatsJetStreamPublisher(
        NATS_URL, subject_prefix=prefix, stream=stream, create_stream=True
    )
    await publisher.connect()  # creates the stream
    await publisher.close()
    js = nc.jetstream()

    async def publish(messages: list[OutboxMessage]) -> None:
        for m in messages:
            # Without Nats-Msg-Id: JetStream would drop the re-publish inside its duplicate
            # window; a re-publish after the window (or by another producer) is stored again.
            await js.publish(
                f"{prefix}.{m.event_type}", encode_body(m), stream=stream, headers=headers_of(m)
            )

    def consumer(handler: Any, sf: Any) -> InboxConsumer:
        return NatsInboxConsumer(
            handler,
            subject=f"{prefix}.>",
            durable=f"d{suffix}",
            stream=stream,
            servers=NATS_URL,
            uow_factory=lambda: SQLAlchemyUnitOfWork(sf),
            poll_timeout=0.2,
            error_backoff=FAST,
        )

    try:
        yield Broker(publish, consumer, keeps_order_on_failure=False)
    finally:
        await js.delete_stream(stream)
        await nc.close()


@pytest.fixture
async def redis_streams() -> AsyncIterator[Broker]:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from cqrs_ddd_persistence_sqlalchemy.consumers.redis import RedisStreamInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.publishers.redis import RedisStreamPublisher

    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Redis unreachable: {exc}")
    key = f"test:inbox:{uuid.uuid4().hex[:8]}"
    publisher = RedisStreamPublisher(REDIS_URL, stream_name=key)

    async def publish(messages: list[OutboxMessage]) -> None:
        for m in messages:
            await publisher.publish(m)

    def consumer(handler: Any, sf: Any) -> InboxConsumer:
        return RedisStreamInboxConsumer(
            handler,
            stream=key,
            group="billing",
            member="m-1",
            url=REDIS_URL,
            uow_factory=lambda: SQLAlchemyUnitOfWork(sf),
            poll_timeout=0.2,
            error_backoff=FAST,
        )

    try:
        yield Broker(publish, consumer, keeps_order_on_failure=True)
    finally:
        await publisher.close()
        await client.delete(key)
        await client.aclose()


@pytest.fixture(params=["kafka", "rabbitmq", "nats_js", "redis_streams"])
def broker(request: pytest.FixtureRequest) -> Broker:
    found: Broker = request.getfixturevalue(request.param)
    return found


# -- the tests ------------------------------------------------------------------------------------
def ticks(aggregates: int, per_aggregate: int) -> list[OutboxMessage]:
    return [
        OutboxMessage(event_type="Tick", payload={"seq": s}, partition_key=f"agg-{a}")
        for s in range(per_aggregate)
        for a in range(aggregates)
    ]


async def _effects(sf: async_sessionmaker[AsyncSession]) -> dict[str, tuple[int, int]]:
    async with sf() as session:
        rows = (await session.execute(select(counts))).all()
    return {r.aggregate_id: (r.n, r.out_of_order) for r in rows}


async def _inbox_rows(sf: async_sessionmaker[AsyncSession]) -> int:
    async with sf() as session:
        return int(
            (await session.execute(select(func.count()).select_from(inbox_table))).scalar_one()
        )


async def _run_until(consumer: InboxConsumer, done: Callable[[], bool], within: float) -> None:
    task = asyncio.create_task(consumer.run())
    deadline = time.monotonic() + within
    try:
        while not done():
            assert not task.done(), task.exception() if not task.cancelled() else "cancelled"
            assert time.monotonic() < deadline, consumer.metrics.snapshot()
            await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)


async def test_inbox_consumer_applies_each_message_once(
    broker: Broker, world: async_sessionmaker[AsyncSession]
) -> None:
    messages = ticks(4, 5)
    await broker.publish(messages)
    await broker.publish(messages[:6])  # a relay's re-published batch
    consumer = broker.consumer(count_effect, world)
    await _run_until(consumer, lambda: consumer.metrics.acked >= 26, within=60)
    assert await _effects(world) == {f"agg-{a}": (5, 0) for a in range(4)}
    assert await _inbox_rows(world) == 20
    m = consumer.metrics
    assert (m.handled, m.duplicates, m.failed) == (20, 6, 0)

    # A second run of the same consumer (a restart) finds nothing left to apply.
    again = broker.consumer(count_effect, world)
    await broker.publish(messages[-2:])
    await _run_until(again, lambda: again.metrics.received >= 2, within=60)
    assert (again.metrics.handled, again.metrics.duplicates) == (0, 2)
    assert await _effects(world) == {f"agg-{a}": (5, 0) for a in range(4)}


async def test_inbox_consumer_retries_a_failed_message_without_double_effect(
    broker: Broker, world: async_sessionmaker[AsyncSession]
) -> None:
    messages = ticks(2, 4)
    victim = messages[2].message_id
    attempts: dict[str, int] = {}

    async def flaky(message: ReceivedMessage, uow: SQLAlchemyUnitOfWork) -> None:
        await count_effect(message, uow)  # written, then rolled back by the failure
        attempts[message.message_id] = attempts.get(message.message_id, 0) + 1
        if message.message_id == victim and attempts[victim] == 1:
            raise RuntimeError("downstream hiccup")

    await broker.publish(messages)
    consumer = broker.consumer(flaky, world)
    await _run_until(consumer, lambda: consumer.metrics.handled >= 8, within=60)
    effects = await _effects(world)
    assert {k: n for k, (n, _) in effects.items()} == {"agg-0": 4, "agg-1": 4}
    if broker.keeps_order_on_failure:
        assert {k: o for k, (_, o) in effects.items()} == {"agg-0": 0, "agg-1": 0}
    assert attempts[victim] == 2
    assert consumer.metrics.failed == 1
    assert await _inbox_rows(world) == 8
