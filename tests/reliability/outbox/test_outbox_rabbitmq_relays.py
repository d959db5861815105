"""Relays in separate processes against PostgreSQL and RabbitMQ.

- 4 relays drain messages written by concurrent units of work: all arrive, no duplicates.
- A relay SIGKILLed mid-batch loses nothing; the only duplicates are messages of its batch.
- Per-key ordering: 100 aggregates x 50 events with 4 relays arrive in per-aggregate order.

Sizes are CI-sized; ``CQRS_SOAK=1`` multiplies them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork

aio_pika = pytest.importorskip("aio_pika")

pytestmark = pytest.mark.postgres_only

WORKER = Path(__file__).parent / "outbox_relay_worker.py"
ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"
AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SOAK = os.environ.get("CQRS_SOAK") == "1"


def schema_of(engine: AsyncEngine) -> str | None:
    """``tests/conftest.py``'s ``schema_of``, from the module instance pytest loaded."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module.schema_of(engine)  # type: ignore[no-any-return]
    raise RuntimeError("tests/conftest.py is not loaded")


@dataclass
class Sink:
    """A RabbitMQ queue bound to the test exchange, recording what arrives, in order."""

    exchange: str
    arrived: list[tuple[str, str | None, int]] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [a[0] for a in self.arrived]

    async def wait_for(self, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(set(self.ids())) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(set(self.ids()))}/{count} arrived")
            await asyncio.sleep(0.1)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    exchange = f"test.relays.{uuid.uuid4().hex[:8]}"
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=1000)
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(ex, routing_key="#")
    result = Sink(exchange)

    async def on_message(msg: Any) -> None:
        seq = json.loads(msg.body).get("seq", -1)
        result.arrived.append((msg.message_id, (msg.headers or {}).get("partition_key"), seq))

    await queue.consume(on_message, no_ack=True)
    try:
        yield result
    finally:
        await ex.delete()
        await channel.close()
        await conn.close()


Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def spawn(library_tables: AsyncEngine, sink: Sink) -> AsyncIterator[Spawn]:
    schema = schema_of(library_tables)
    assert schema is not None
    procs: list[asyncio.subprocess.Process] = []

    async def start(**env: str) -> asyncio.subprocess.Process:
        full = {
            **os.environ,
            "OUTBOX_SCHEMA": schema,
            "OUTBOX_EXCHANGE": sink.exchange,
            **env,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), env=full, stdout=asyncio.subprocess.PIPE
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"ready", line
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def write_concurrently(
    engine: AsyncEngine, messages: list[OutboxMessage], *, per_uow: int, parallel: int
) -> None:
    """Write ``messages`` through many units of work, ``parallel`` at a time."""
    outbox = SQLAlchemyOutboxStorage(engine)
    sf = async_sessionmaker(engine, expire_on_commit=False)
    chunks = [messages[i : i + per_uow] for i in range(0, len(messages), per_uow)]
    gate = asyncio.Semaphore(parallel)

    async def one(chunk: list[OutboxMessage]) -> None:
        async with gate, SQLAlchemyUnitOfWork(sf) as uow:
            await outbox.save_messages(chunk, uow=uow)
            await uow.commit()

    await asyncio.gather(*(one(c) for c in chunks))


def ticks(n: int) -> list[OutboxMessage]:
    return [OutboxMessage(event_type="Tick", payload={"seq": i}) for i in range(n)]


async def test_four_relay_processes_drain_without_duplicates(
    library_tables: AsyncEngine, sink: Sink, spawn: Spawn
) -> None:
    total = 100_000 if SOAK else 20_000
    workers = [await spawn(OUTBOX_BATCH="100") for _ in range(4)]
    messages = ticks(total)
    started = time.monotonic()
    await write_concurrently(library_tables, messages, per_uow=250, parallel=8)
    await sink.wait_for(total, within=600 if SOAK else 150)
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # let any late duplicate show up
    counts = Counter(sink.ids())
    assert set(counts) == {m.message_id for m in messages}
    assert [mid for mid, n in counts.items() if n > 1] == []
    stats = await SQLAlchemyOutboxStorage(library_tables).stats()
    assert (stats.done, stats.pending, stats.dead) == (total, 0, 0)
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    assert [await asyncio.wait_for(p.wait(), 30) for p in workers] == [0, 0, 0, 0]
    print(f"\n{total} messages, 4 relays: {total / elapsed:.0f} msg/s end to end")


async def test_sigkilled_relay_loses_nothing(
    library_tables: AsyncEngine, sink: Sink, spawn: Spawn, tmp_path: Path
) -> None:
    total, lease = 1000, 3.0
    messages = ticks(total)
    await write_concurrently(library_tables, messages, per_uow=100, parallel=4)
    claim_log = tmp_path / "claims.log"
    victim = await spawn(
        OUTBOX_BATCH="50",
        OUTBOX_SLOW="0.02",
        OUTBOX_LEASE=str(lease),
        OUTBOX_CLAIM_LOG=str(claim_log),
    )
    # Let the victim get well into a batch: some published, the rest not yet.
    deadline = time.monotonic() + 30
    while len(sink.arrived) < 75:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    victim.kill()
    assert await victim.wait() == -signal.SIGKILL
    killed_at = time.monotonic()
    batches = [line.split(",") for line in claim_log.read_text().splitlines()]
    in_flight = set(batches[-1])
    acked_before = {mid for batch in batches[:-1] for mid in batch}

    for _ in range(2):
        await spawn(OUTBOX_BATCH="100", OUTBOX_LEASE=str(lease))
    await sink.wait_for(total, within=120)
    await asyncio.sleep(1.0)
    counts = Counter(sink.ids())
    assert set(counts) == {m.message_id for m in messages}  # nothing lost
    duplicates = {mid for mid, n in counts.items() if n > 1}
    assert duplicates <= in_flight  # the only duplicates are messages of the killed batch
    assert not duplicates & acked_before
    # The killed batch only came back after its lease expired.
    last_of_batch = max(i for i, (mid, _k, _s) in enumerate(sink.arrived) if mid in in_flight)
    assert last_of_batch >= 0
    assert time.monotonic() - killed_at >= lease * 0.5
    stats = await SQLAlchemyOutboxStorage(library_tables).stats()
    assert (stats.done, stats.pending) == (total, 0)


async def test_per_key_order_with_four_relays(
    library_tables: AsyncEngine, sink: Sink, spawn: Spawn
) -> None:
    aggregates, events = (300, 100) if SOAK else (100, 50)
    messages = [
        OutboxMessage(event_type="Moved", payload={"seq": e}, partition_key=f"agg-{a}")
        for e in range(events)
        for a in range(aggregates)
    ]
    for _ in range(4):
        await spawn(OUTBOX_BATCH="100", OUTBOX_ORDERED="1")
    # Written in interleaved, concurrent units of work (one UoW per round of events).
    await write_concurrently(library_tables, messages, per_uow=aggregates, parallel=1)
    await sink.wait_for(aggregates * events, within=300)
    per_key: dict[str | None, list[int]] = {}
    for _mid, key, seq in sink.arrived:
        per_key.setdefault(key, []).append(seq)
    assert len(per_key) == aggregates
    for key, seqs in per_key.items():
        assert seqs == list(range(events)), f"{key} out of order: {seqs[:20]}..."
