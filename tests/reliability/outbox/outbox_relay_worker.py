"""An outbox relay process for the reliability tests (RabbitMQ publisher).

Configured by environment: ``OUTBOX_SCHEMA`` (PostgreSQL schema), ``OUTBOX_EXCHANGE``,
``OUTBOX_BATCH``, ``OUTBOX_LEASE``, ``OUTBOX_ORDERED`` ("1": per-key ordering),
``OUTBOX_SLOW`` (seconds per publish, one at a time), ``OUTBOX_CLAIM_LOG`` (a file that gets
one line of message ids per claimed batch, written before publishing). SIGTERM stops it
gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[3]))  # tests/conftest.py imports tests.*

from conftest import PG_URL, pg_connect_args  # the test suite's helpers
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxClaim, OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class SlowPublisher:
    def __init__(self, inner: RabbitMQPublisher, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def publish(self, message: OutboxMessage) -> None:
        await asyncio.sleep(self.delay)
        await self.inner.publish(message)


class LoggingOutbox(SQLAlchemyOutboxStorage):
    claim_log: str = ""

    async def claim(
        self, limit: int = 100, *, lease_seconds: float | None = None
    ) -> list[OutboxClaim]:
        claimed = await super().claim(limit, lease_seconds=lease_seconds)
        if claimed and self.claim_log:
            _append_line(self.claim_log, ",".join(c.message_id for c in claimed))
        return claimed


def _append_line(path: str, line: str) -> None:
    # Synchronous on purpose: the line must be on disk before the batch is published.
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


async def main() -> None:
    env = os.environ
    schema = env["OUTBOX_SCHEMA"]
    engine = create_engine(
        PG_URL,
        connect_args=pg_connect_args(PG_URL, search_path=f"{schema}, public"),
        pool_size=4,
    )
    outbox = LoggingOutbox(
        engine,
        lease_seconds=float(env.get("OUTBOX_LEASE", "30")),
        ordered_by_key=env.get("OUTBOX_ORDERED") == "1",
    )
    outbox.claim_log = env.get("OUTBOX_CLAIM_LOG", "")
    slow = float(env.get("OUTBOX_SLOW", "0"))
    batch = int(env.get("OUTBOX_BATCH", "100"))
    async with RabbitMQPublisher(AMQP_URL, exchange=env["OUTBOX_EXCHANGE"]) as rabbit:
        publisher = SlowPublisher(rabbit, slow) if slow else rabbit
        relay = OutboxRelay(
            outbox,
            publisher,
            batch_size=batch,
            poll_interval=0.2,
            max_in_flight=1 if slow else None,
            name=f"relay-{os.getpid()}",
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, relay.stop)
        print("ready", flush=True)
        await relay.run()
    await engine.dispose()
    print(f"stopped {relay.metrics.snapshot()}", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
