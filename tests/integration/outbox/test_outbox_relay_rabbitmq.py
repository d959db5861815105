"""A real RabbitMQ refusing publishes: backoff, dead letters, requeue (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff

aio_pika = pytest.importorskip("aio_pika")

AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def test_refusing_rabbitmq_backs_off_dead_letters_and_requeue_delivers(
    library_tables: AsyncEngine,
) -> None:
    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    exchange = f"test.refuse.{uuid.uuid4().hex[:8]}"
    channel = await conn.channel()
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    # A full queue that rejects publishes: the broker nacks every message.
    full = await channel.declare_queue(
        exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await full.bind(ex, routing_key="Refused")
    outbox = SQLAlchemyOutboxStorage(
        library_tables, lease_seconds=5, max_attempts=3, backoff=Backoff(base=0.1, jitter=0.2)
    )
    messages = [OutboxMessage(event_type="Refused", payload={"i": i}) for i in range(5)]
    await outbox.save_messages(messages)
    try:
        async with RabbitMQPublisher(
            AMQP_URL, exchange=exchange, exchange_type="direct", confirm_timeout=5
        ) as publisher:
            relay = OutboxRelay(outbox, publisher, listen=False)
            assert await relay.run_once() == 5
            assert relay.metrics.failed == 5
            assert await relay.run_once() == 0  # backing off: not immediately
            deadline = time.monotonic() + 20
            while (await outbox.stats()).dead < 5:
                assert time.monotonic() < deadline, "not dead-lettered in time"
                await relay.run_once()
                await asyncio.sleep(0.05)
            dead = await outbox.dead_letters()
            assert sorted(m.message_id for m in dead) == sorted(m.message_id for m in messages)
            assert all(m.retry_count == 3 and "DeliveryError" in (m.error or "") for m in dead)

            # The broker accepts again: requeue brings the dead letters back and they arrive.
            await full.delete(if_unused=False, if_empty=False)
            accepting = await channel.declare_queue(exclusive=True)
            await accepting.bind(ex, routing_key="Refused")
            assert await outbox.requeue() == 5
            while await relay.run_once():
                pass
            received: list[Any] = []
            for _ in range(5):
                incoming = await accepting.get(timeout=5)
                await incoming.ack()
                received.append(incoming.message_id)
            assert sorted(received) == sorted(m.message_id for m in messages)
            stats = await outbox.stats()
            assert (stats.done, stats.dead, stats.pending) == (5, 0, 0)
    finally:
        await ex.delete()
        await channel.close()
        await conn.close()
