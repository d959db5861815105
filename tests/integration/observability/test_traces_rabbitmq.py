"""The trace of a request crosses a real RabbitMQ (SQLite and PostgreSQL).

A request span writes an event and its outbox message in one unit of work; the outbox relay
publishes the message through ``RabbitMQPublisher``; the message's AMQP headers carry the
``traceparent`` of the relay's send span (in the request's trace), and
``RabbitMQInboxConsumer`` handles it under a consumer span that continues that trace.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from opentelemetry.trace import SpanKind
from otel_sdk import Spans, tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.consumers.base import ReceivedMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay

aio_pika = pytest.importorskip("aio_pika")

AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

pytestmark = pytest.mark.usefixtures("library_tables")


@pytest.fixture
async def exchange_and_queue() -> AsyncIterator[str]:
    """A fresh topic exchange and a durable queue of the same name bound to it (declared
    before the relay publishes: the publisher's messages are mandatory)."""
    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    name = f"test.traces.{uuid.uuid4().hex[:8]}"
    channel = await conn.channel()
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(exchange, routing_key="#")
    try:
        yield name
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await channel.close()
        await conn.close()


async def test_rabbitmq_carries_the_traceparent_and_the_consumer_continues_it(
    engine: AsyncEngine, spans: Spans, exchange_and_queue: str
) -> None:
    from cqrs_ddd_persistence_sqlalchemy.consumers.rabbitmq import RabbitMQInboxConsumer
    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

    name = exchange_and_queue
    outbox = SQLAlchemyOutboxStorage(engine)
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as request:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await SQLAlchemyEventStore(engine).append(
                StoredEvent(event_type="OrderPlaced", aggregate_id="o-1", payload={"n": 1}),
                uow=uow,
            )
            await outbox.save_messages(
                [OutboxMessage(event_type="OrderPlaced", payload={"n": 1})], uow=uow
            )
            await uow.commit()
    trace_id = request.get_span_context().trace_id

    async with RabbitMQPublisher(AMQP_URL, exchange=name, confirm_timeout=10) as publisher:
        assert await OutboxRelay(outbox, publisher, listen=False).run_once() == 1
    send = spans.one("send OrderPlaced")
    assert send.kind is SpanKind.PRODUCER
    assert send.context.trace_id == trace_id
    assert (
        send.parent is not None
        and send.parent.span_id == spans.one("save outbox_messages").context.span_id
    )
    assert send.attributes is not None
    assert send.attributes["messaging.system"] == "rabbitmq"

    received: list[ReceivedMessage] = []
    handled = asyncio.Event()

    async def handler(message: ReceivedMessage, uow: SQLAlchemyUnitOfWork) -> None:
        received.append(message)
        handled.set()

    consumer = RabbitMQInboxConsumer(
        handler,
        queue=name,
        exchange=name,
        url=AMQP_URL,
        consumer="billing",
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
    )
    running = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(handled.wait(), 20)
    finally:
        await consumer.stop()
        await running

    # The AMQP headers carried the relay's send span, in the request's trace.
    (message,) = received
    assert message.event_type == "OrderPlaced"
    _, carried_trace, carried_span, _ = message.headers["traceparent"].split("-")
    assert carried_trace == f"{trace_id:032x}"
    assert carried_span == f"{send.context.span_id:016x}"
    assert consumer.metrics.handled == consumer.metrics.acked == 1

    process = spans.one(f"process {name}")
    assert process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.system"] == "rabbitmq"
    assert process.attributes["messaging.consumer.group.name"] == "billing"
    # The consumer's unit of work (inbox record, commit) is inside that span.
    commits = [s for s in spans.named("commit") if s.context.trace_id == trace_id]
    assert any(
        s.parent is not None and s.parent.span_id == process.context.span_id for s in commits
    )
