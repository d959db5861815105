"""``cqrs-ddd-sqla outbox relay --publisher kafka``: two relay processes to a real broker.

5,000 outbox messages for 100 aggregates, two CLI relay processes (``--ordered-by-key``), a
consumer group reading the topic: every message arrives, once, each aggregate in order, with
its id in the ``message_id`` header; both relays stop gracefully on SIGTERM. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from asyncio.subprocess import PIPE
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from tests.acceptance.conftest import CLI, cli_env

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork

AGGREGATES, PER_AGGREGATE = 100, 50
TOTAL = AGGREGATES * PER_AGGREGATE


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


async def _write_outbox(url: str) -> list[OutboxMessage]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sf = async_sessionmaker(engine, expire_on_commit=False)
        outbox = SQLAlchemyOutboxStorage(engine)
        messages = [
            OutboxMessage(event_type="Moved", payload={"seq": s}, partition_key=f"agg-{a}")
            for s in range(PER_AGGREGATE)
            for a in range(AGGREGATES)
        ]
        for i in range(0, TOTAL, 1000):
            async with SQLAlchemyUnitOfWork(sf) as uow:
                await outbox.save_messages(messages[i : i + 1000], uow=uow)
                await uow.commit()
        if engine.dialect.name == "postgresql":
            # What autovacuum does to a live table. Without statistics the planner runs the
            # per-key claim as an anti join over the whole key index (~15 s per claim at 5,000
            # pending rows with two relays, instead of milliseconds).
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE outbox_messages"))
        return messages
    finally:
        await engine.dispose()


async def test_two_cli_relays_publish_to_kafka_in_per_aggregate_order(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"acc-outbox-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    messages = await _write_outbox(database_url)

    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"acc-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    await reader.start()
    args = [
        str(CLI), "outbox", "relay", "-d", database_url,
        "--publisher", "kafka", "--broker-url", kafka_bootstrap, "--target", topic,
        "--ordered-by-key", "--poll-interval", "0.1",
    ]  # fmt: skip
    relays = [
        await asyncio.create_subprocess_exec(
            *args, cwd=tmp_path, env=cli_env(), stdout=PIPE, stderr=PIPE
        )
        for _ in range(2)
    ]
    arrived: list[tuple[str, str, int]] = []
    try:
        deadline = time.monotonic() + 120
        while len(arrived) < TOTAL:
            if time.monotonic() > deadline:
                for relay in relays:
                    relay.send_signal(signal.SIGTERM)
                outs = [await relay.communicate() for relay in relays]
                raise AssertionError(f"{len(arrived)}/{TOTAL} arrived; relays said {outs}")
            assert all(r.returncode is None for r in relays), [r.returncode for r in relays]
            for records in (await reader.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    arrived.append(
                        (headers["message_id"], r.key.decode(), json.loads(r.value)["seq"])
                    )
            await reader.commit()
        await asyncio.sleep(1.0)  # a late duplicate would show up here
        for records in (await reader.getmany(timeout_ms=500)).values():
            arrived.extend(("late", r.key.decode(), -1) for r in records)
    finally:
        await reader.stop()
        for relay in relays:
            if relay.returncode is None:
                relay.send_signal(signal.SIGTERM)
        outputs = [
            tuple(out.decode() for out in await asyncio.wait_for(relay.communicate(), 60))
            for relay in relays
        ]

    assert [relay.returncode for relay in relays] == [0, 0], outputs
    assert Counter(mid for mid, _k, _s in arrived) == Counter(m.message_id for m in messages)
    per_key: dict[str, list[int]] = {}
    for _mid, key, seq in arrived:
        per_key.setdefault(key, []).append(seq)
    assert per_key == {f"agg-{a}": list(range(PER_AGGREGATE)) for a in range(AGGREGATES)}
    published = [int(out.split("published ")[1].split(",")[0]) for out, _err in outputs]
    assert sum(published) == TOTAL
    print(f"\nrelays published {published}")
