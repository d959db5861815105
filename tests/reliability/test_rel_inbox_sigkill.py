"""Outbox → broker → inbox, exactly-once effects under SIGKILL (Kafka and RabbitMQ).

Relay processes publish the outbox (100 aggregates, ordered by key) to the broker while a
consumer process applies each message in its unit of work with the inbox (a counter per
aggregate). Then, with real processes killed by pid:

- the first relay is SIGKILLed mid-batch (some of its batch confirmed by the broker, none
  acknowledged) and restarted next to a second relay: its batch is published again after the
  lease, so the broker holds duplicates;
- the consumer is SIGKILLed mid-batch (handled and committed, not yet acknowledged /
  offset-committed) and restarted: the broker redelivers.

Afterwards the effects equal exactly the distinct messages (every counter = messages of its
aggregate, in order), on SQLite and PostgreSQL for the inbox. CI size: 100 x 10 messages;
``CQRS_SOAK=1``: 100 x 50.
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
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.reliability import inbox_proc
from tests.reliability.inbox_proc import counts
from tests.reliability.rel_faults import soak

from cqrs_ddd_core.errors import RetryableError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
    inbox_table,
)

pytestmark = pytest.mark.slow

ROOT_CONFTEST = Path(__file__).parents[1] / "conftest.py"
AMQP_URL = os.environ.get("CQRS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
AGGREGATES, PER_AGGREGATE = 100, soak(10, 50)
TOTAL = AGGREGATES * PER_AGGREGATE
LEASE = 2.0


def schema_of(engine: AsyncEngine) -> str | None:
    """``tests/conftest.py``'s ``schema_of``, from the module instance pytest loaded."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module.schema_of(engine)  # type: ignore[no-any-return]
    raise RuntimeError("tests/conftest.py is not loaded")


@dataclass
class BrokerSetup:
    name: str
    env: dict[str, str]
    #: Every record the broker holds as (message_id, partition_key, seq), per key in order;
    #: ``None`` where the broker cannot be read back without consuming (RabbitMQ).
    read_back: Callable[[], Awaitable[list[tuple[str, str, int]] | None]]


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> BrokerSetup:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"exactly-once-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    async def read_back() -> list[tuple[str, str, int]]:
        reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
        await reader.start()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        records: list[tuple[str, str, int]] = []
        try:
            ends = await reader.end_offsets(partitions)
            while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
                for recs in (await reader.getmany(timeout_ms=500)).values():
                    for r in recs:
                        headers = {k: v.decode() for k, v in r.headers}
                        seq = json.loads(r.value)["seq"]
                        records.append((headers["message_id"], r.key.decode(), seq))
        finally:
            await reader.stop()
        return records

    env = {"BROKER": "kafka", "KAFKA_BOOTSTRAP": kafka_bootstrap, "TARGET": topic}
    return BrokerSetup("kafka", {**env, "GROUP": f"g-{topic}"}, read_back)


@pytest.fixture
async def rabbitmq() -> AsyncIterator[BrokerSetup]:
    aio_pika = pytest.importorskip("aio_pika")
    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    name = f"test.exactly-once.{uuid.uuid4().hex[:8]}"
    channel = await conn.channel()
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(exchange, routing_key="#")

    async def read_back() -> None:
        return None

    try:
        yield BrokerSetup(
            "rabbitmq", {"BROKER": "rabbitmq", "AMQP_URL": AMQP_URL, "TARGET": name}, read_back
        )
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await channel.close()
        await conn.close()


@pytest.fixture(params=["kafka", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> BrokerSetup:
    found: BrokerSetup = request.getfixturevalue(request.param)
    return found


@dataclass
class Procs:
    """Service processes forked from the preloaded forkserver; ended by pid."""

    base_env: dict[str, str]
    logs: Path
    ctx: Any = field(default_factory=inbox_proc.context)
    started: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ready = self.ctx.Queue()

    async def start(self, *specs: tuple[str, str, dict[str, str]]) -> list[Any]:
        """Start ``(role, tag, env)`` processes at once; return them once all are running."""
        procs = []
        for role, tag, env in specs:
            full = {
                **self.base_env,
                "CLAIM_LOG": str(self.logs / f"{tag}.claims"),
                "CONFIRM_LOG": str(self.logs / f"{tag}.confirms"),
                "OUTCOME_LOG": str(self.logs / f"{tag}.outcomes"),
                **env,
            }
            proc = self.ctx.Process(
                target=inbox_proc.serve, args=(role, tag, full, self.ready), daemon=True
            )
            proc.start()
            procs.append(proc)
            self.started.append(proc)
        tags = {await asyncio.to_thread(self.ready.get, True, 60) for _ in specs}
        assert tags == {tag for _, tag, _ in specs}
        return procs

    def lines(self, tag: str, kind: str) -> list[str]:
        path = self.logs / f"{tag}.{kind}"
        return path.read_text().splitlines() if path.exists() else []

    async def stop_all(self) -> list[int | None]:
        for proc in self.started:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.started:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.join, 30)
        return [proc.exitcode for proc in self.started]


async def sigkill(proc: Any) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.join, 30)
    assert proc.exitcode == -signal.SIGKILL


async def until(condition: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            result = condition()
            if await result if isinstance(result, Awaitable) else result:
                return
        except RetryableError:
            # The test's own read lost a lock race to the relays and consumers (SQLite's
            # single writer, busy): not an outcome of the system under test; look again.
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_rel_inbox_effects_exactly_once_through_sigkills(
    library_tables: AsyncEngine, broker: BrokerSetup, tmp_path: Path
) -> None:
    engine = library_tables
    async with engine.begin() as conn:
        await conn.run_sync(counts.metadata.create_all)
    sf = async_sessionmaker(engine, expire_on_commit=False)
    outbox = SQLAlchemyOutboxStorage(engine)
    messages = [
        OutboxMessage(event_type="Tick", payload={"seq": s}, partition_key=f"agg-{a}")
        for s in range(PER_AGGREGATE)
        for a in range(AGGREGATES)
    ]
    for i in range(0, TOTAL, 500):
        async with SQLAlchemyUnitOfWork(sf) as uow:
            await outbox.save_messages(messages[i : i + 500], uow=uow)
            await uow.commit()
    db_env = {"DB_URL": engine.url.render_as_string(hide_password=False)}
    if (schema := schema_of(engine)) is not None:
        db_env["DB_SCHEMA"] = schema
    procs = Procs({**db_env, **broker.env, "RELAY_LEASE": str(LEASE)}, tmp_path)

    async def effects() -> dict[str, tuple[int, int]]:
        async with sf() as session:
            rows = (await session.execute(select(counts))).all()
        return {r.aggregate_id: (r.n, r.out_of_order) for r in rows}

    async def applied() -> int:
        return sum(n for n, _ in (await effects()).values())

    t0 = time.monotonic()
    phases: dict[str, float] = {}
    try:
        slow = {"RELAY_SLOW": "0.004"}
        # Relay 1 starts alone: with per-key order a relay that acks a whole batch claims the
        # next one at once, so a second relay started now could leave it nothing to be killed in.
        consumer_1, relay_1 = await procs.start(
            ("consumer", "c1", {"HANDLER_DELAY": "0.002"}), ("relay", "r1", slow)
        )

        # -- the relay dies mid-batch: part of its batch confirmed by the broker, none acked
        def relay_1_mid_batch() -> bool:
            claims = procs.lines("r1", "claims")
            confirmed = set(procs.lines("r1", "confirms"))
            if not claims:
                return False
            batch = claims[-1].split(",")
            return 3 <= len(confirmed & set(batch)) < len(batch)

        await until(relay_1_mid_batch, 60, "relay 1 mid-batch")
        await sigkill(relay_1)
        phases["relay killed"] = time.monotonic() - t0
        in_flight = set(procs.lines("r1", "claims")[-1].split(","))
        confirmed_in_flight = in_flight & set(procs.lines("r1", "confirms"))
        assert confirmed_in_flight  # at the broker, not acknowledged: published again later
        # Two relays from here on: relay 1 restarted, and relay 2.
        await procs.start(("relay", "r1b", slow), ("relay", "r2", slow))

        # -- the consumer dies mid-batch: handled and committed, not all acknowledged
        await until(lambda: len(procs.lines("c1", "outcomes")) >= TOTAL // 3, 180, "consumer 1")
        await sigkill(consumer_1)
        phases["consumer killed"] = time.monotonic() - t0
        await procs.start(("consumer", "c2", {}))

        async def done() -> bool:
            stats = await outbox.stats()
            return stats.done == TOTAL and await applied() == TOTAL

        await until(done, 120, "every message published and applied")
        phases["all applied"] = time.monotonic() - t0
        # The re-published batch may still be on its way to the consumer: wait until it idles.
        last = -1
        while (seen := len(procs.lines("c2", "outcomes"))) != last:
            last = seen
            await asyncio.sleep(1.5)
        phases["idle"] = time.monotonic() - t0
    finally:
        codes = await procs.stop_all()

    # Effects: exactly the distinct messages, per aggregate, in order.
    assert await effects() == {f"agg-{a}": (PER_AGGREGATE, 0) for a in range(AGGREGATES)}
    async with sf() as session:
        recorded = await session.execute(select(func.count()).select_from(inbox_table))
        assert recorded.scalar_one() == TOTAL
    # No message was applied twice, duplicates were delivered and skipped.
    outcomes = [line.split() for tag in ("c1", "c2") for line in procs.lines(tag, "outcomes")]
    handled = Counter(mid for kind, mid in outcomes if kind == "handled")
    assert [mid for mid, n in handled.items() if n > 1] == []
    skipped = sum(kind == "duplicate" for kind, _ in outcomes)
    assert skipped >= 1
    assert codes[2:] == [0] * (len(codes) - 2)  # the survivors stop gracefully
    # What the broker holds: every message; duplicates only from the killed relay's batch, or
    # from a batch whose lease ran out under load before its relay settled it (claimed again by
    # another relay: at-least-once, as documented; the inbox above made the effects exactly-once).
    claimed = Counter(
        mid for tag in ("r1", "r1b", "r2") for line in procs.lines(tag, "claims")
        for mid in line.split(",")
    )  # fmt: skip
    reclaimed = {mid for mid, n in claimed.items() if n > 1} - in_flight
    held = await broker.read_back()
    if held is not None:
        copies = Counter(mid for mid, _k, _s in held)
        assert set(copies) == {m.message_id for m in messages}
        duplicates = {mid for mid, n in copies.items() if n > 1}
        assert duplicates <= in_flight | reclaimed, (
            f"{len(duplicates - in_flight - reclaimed)} message(s) published twice without being "
            "claimed twice"
        )
        first_seen: dict[str, list[int]] = {}
        seen_ids: set[str] = set()
        for mid, key, seq in held:
            if mid not in seen_ids:
                seen_ids.add(mid)
                first_seen.setdefault(key, []).append(seq)
        assert all(seqs == list(range(PER_AGGREGATE)) for seqs in first_seen.values())
    else:
        duplicates = set()
    print(
        f"\n{broker.name}: {TOTAL} messages, broker duplicates {len(duplicates) if held else '?'}"
        f" (relay batch confirmed before the kill: {len(confirmed_in_flight)}), "
        f"claimed again after a lost lease {len(reclaimed)}, "
        f"deliveries skipped by the inbox {skipped}; phases {phases}"
    )
