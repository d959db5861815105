"""Relay and consumer processes for the exactly-once tests (outbox → broker → inbox).

Forked from a ``forkserver`` that has this module (and so the library and the broker clients)
imported already: a new process is up in well under a second, where a fresh interpreter takes
seconds on a busy 2-core machine. ``serve(role, env, ready)`` runs one, configured by ``env``:

- ``DB_URL``; ``DB_SCHEMA`` (PostgreSQL search path) when set.
- ``BROKER``: ``kafka`` (``KAFKA_BOOTSTRAP``, ``TARGET`` = topic, ``GROUP``) or ``rabbitmq``
  (``AMQP_URL``, ``TARGET`` = exchange and queue name).
- relay: ``RELAY_SLOW`` (seconds per publish, one at a time), ``RELAY_LEASE``, ``CLAIM_LOG``
  (one line of ids per claimed batch, on disk before publishing), ``CONFIRM_LOG`` (an id line
  per publish the broker confirmed).
- consumer: ``HANDLER_DELAY`` (seconds per message), ``OUTCOME_LOG`` (a line
  ``handled|duplicate|failed <id>`` per message, written after its unit of work ended).

Lines are appended with one ``write`` each, so what a SIGKILL leaves is whole lines. Puts its
tag on ``ready`` once running; SIGTERM stops gracefully (exit 0).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from multiprocessing.context import ForkServerContext
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.consumers import InboxConsumer, Outcome, ReceivedMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxClaim, OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff

#: The consumer's effect: a counter per aggregate, and how often a seq arrived out of order.
counts = Table(
    "exactly_once_counts",
    MetaData(),
    Column("aggregate_id", String(50), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("out_of_order", Integer, nullable=False),
)

#: Kafka group timings that make a join / a dead member's takeover take ~1-2 s on Tansu.
KAFKA_GROUP_OPTIONS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


def engine_from_env() -> AsyncEngine:
    url, schema = os.environ["DB_URL"], os.environ.get("DB_SCHEMA")
    if schema:
        return create_engine(
            url, connect_args={"server_settings": {"search_path": f"{schema}, public"}}
        )
    return create_engine(url)


def append(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())  # one write: a whole line survives a SIGKILL


def open_log(name: str) -> int | None:
    path = os.environ.get(name)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None


async def count_effect(message: ReceivedMessage, uow: SQLAlchemyUnitOfWork) -> None:
    """+1 on the aggregate's counter in the handler's unit of work (seq order noted)."""
    delay = float(os.environ.get("HANDLER_DELAY", "0"))
    if delay:
        await asyncio.sleep(delay)
    key, seq = message.partition_key, int(message.payload["seq"])
    c = counts.c
    row = (await uow.session.execute(select(c.last_seq).where(c.aggregate_id == key))).first()
    if row is None:
        stmt: Any = insert(counts).values(
            aggregate_id=key, n=1, last_seq=seq, out_of_order=int(seq != 0)
        )
    else:
        stmt = (
            update(counts)
            .where(c.aggregate_id == key)
            .values(
                n=c.n + 1,
                last_seq=seq,
                out_of_order=c.out_of_order + int(seq != row.last_seq + 1),
            )
        )
    await uow.session.execute(stmt)


# -- relay ---------------------------------------------------------------------------------------
class LoggedOutbox(SQLAlchemyOutboxStorage):
    claim_log: int | None = None

    async def claim(
        self, limit: int = 100, *, lease_seconds: float | None = None
    ) -> list[OutboxClaim]:
        claimed = await super().claim(limit, lease_seconds=lease_seconds)
        if claimed and self.claim_log is not None:
            append(self.claim_log, ",".join(c.message_id for c in claimed))
        return claimed


class LoggedPublisher:
    def __init__(self, inner: Any, delay: float, confirm_log: int | None) -> None:
        self.inner, self.delay, self.confirm_log = inner, delay, confirm_log

    async def publish(self, message: OutboxMessage) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.inner.publish(message)
        if self.confirm_log is not None:
            append(self.confirm_log, message.message_id)


def broker_publisher() -> Any:
    env = os.environ
    if env["BROKER"] == "kafka":
        from cqrs_ddd_persistence_sqlalchemy.publishers.kafka import KafkaPublisher

        return KafkaPublisher(env["KAFKA_BOOTSTRAP"], topic=env["TARGET"])
    from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

    return RabbitMQPublisher(env["AMQP_URL"], exchange=env["TARGET"])


async def relay(ready: Any) -> None:
    env = os.environ
    engine = engine_from_env()
    outbox = LoggedOutbox(
        engine, lease_seconds=float(env.get("RELAY_LEASE", "30")), ordered_by_key=True
    )
    outbox.claim_log = open_log("CLAIM_LOG")
    slow = float(env.get("RELAY_SLOW", "0"))
    async with broker_publisher() as inner:
        worker = OutboxRelay(
            outbox,
            LoggedPublisher(inner, slow, open_log("CONFIRM_LOG")),
            batch_size=100,
            poll_interval=0.1,
            max_in_flight=1 if slow else None,
            name=f"relay-{os.getpid()}",
        )
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
        ready()
        await worker.run()
    await engine.dispose()


# -- consumer ------------------------------------------------------------------------------------
def logged(cls: type[InboxConsumer], outcome_log: int | None) -> type[InboxConsumer]:
    class Logged(cls):  # type: ignore[valid-type, misc]
        async def process(self, message: ReceivedMessage) -> Outcome:
            outcome: Outcome = await super().process(message)
            if outcome_log is not None:
                append(outcome_log, f"{outcome.value} {message.message_id}")
            return outcome

    return Logged


async def consumer(ready: Any) -> None:
    env = os.environ
    engine = engine_from_env()
    sf = async_sessionmaker(engine, expire_on_commit=False)
    common: dict[str, Any] = {
        "uow_factory": lambda: SQLAlchemyUnitOfWork(sf),
        "error_backoff": Backoff(base=0.1, maximum=1.0),
    }
    outcome_log = open_log("OUTCOME_LOG")
    worker: InboxConsumer
    if env["BROKER"] == "kafka":
        from cqrs_ddd_persistence_sqlalchemy.consumers.kafka import KafkaInboxConsumer

        worker = logged(KafkaInboxConsumer, outcome_log)(
            count_effect,
            topics=[env["TARGET"]],
            group_id=env["GROUP"],
            bootstrap_servers=env["KAFKA_BOOTSTRAP"],
            poll_timeout=0.2,
            consumer_options=KAFKA_GROUP_OPTIONS,
            **common,
        )
    else:
        from cqrs_ddd_persistence_sqlalchemy.consumers.rabbitmq import RabbitMQInboxConsumer

        worker = logged(RabbitMQInboxConsumer, outcome_log)(
            count_effect,
            queue=env["TARGET"],
            exchange=env["TARGET"],
            url=env["AMQP_URL"],
            **common,
        )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    ready()
    await worker.run()
    await engine.dispose()


def serve(role: str, tag: str, env: dict[str, str], ready: Any) -> None:
    """Process entry point: run ``role`` ("relay" or "consumer") until SIGTERM / SIGKILL."""
    os.environ.update(env)
    main = relay if role == "relay" else consumer
    asyncio.run(main(lambda: ready.put(tag)))


def context() -> ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.reliability.inbox_proc"])
    return ctx
