"""The same workloads through PgBouncer in transaction mode, against a direct connection.

- ``pooler.es_append_1``: one event per append, outside a unit of work (events/s);
- ``pooler.es_writers_8``: 8 concurrent writers, 5-event unit-of-work transactions (events/s);
- ``pooler.outbox_batch50``: outbox claim + publish + ack, 4 relays, batch 50 (msgs/s).

Variants: ``direct`` (the baseline: ``create_engine(url)``), ``pgbouncer``
(``create_engine(pgbouncer_url, pooler="transaction")``: the schema's ``search_path`` applied
per transaction, every statement in a transaction), ``pgbouncer, fast_path=False`` (the asyncpg
fast path off: what adapting it, rather than turning it off, is worth), and the first two on
psycopg 3 (``compare``: their ratio). PgBouncer is Debian's, started by the workload on a free
port (``tests/topology/pgbouncer.py``; 20 server connections: enough for every client, so the
ratio is the pooler's hop and pooler mode, not queueing). Run:
``uv run python -m benchmarks.run 'pooler.*'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import asyncpg
from benchmarks._pg import BenchDb, psycopg_url, search_path_args
from benchmarks.bench_queue import WORKERS, _Collector, _fill
from benchmarks.harness import Context, Variant, workload
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.topology.pgbouncer import running_pgbouncer

from cqrs_ddd_core import StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay

DIRECT, POOLED, POOLED_NO_FAST = "direct", "pgbouncer", "pgbouncer, fast_path=False"
DIRECT_PSYCOPG, POOLED_PSYCOPG = "direct (psycopg)", "pgbouncer (psycopg)"
COMPARE = ((POOLED_PSYCOPG, DIRECT_PSYCOPG),)


def _event(stream: str, i: int) -> StoredEvent:
    return StoredEvent(
        event_type="BenchLineAdded",
        aggregate_id=stream,
        aggregate_type="Order",
        payload={"sku": f"SKU-{i % 97:04d}", "qty": i % 7 + 1, "note": "x" * 40},
    )


async def _engines(ctx: Context, db: BenchDb, pool_size: int) -> dict[str, AsyncEngine]:
    """The variants' engines on ``db``'s schema, a PgBouncer started for them."""
    stack = contextlib.ExitStack()
    bouncer = stack.enter_context(running_pgbouncer(ctx.pg_url, pool_size=20))

    async def stop() -> None:
        stack.close()

    ctx.cleanup.append(stop)  # runs after db.close (registered earlier): engines are gone

    def make(url: str, **kw: Any) -> AsyncEngine:
        engine = create_engine(
            url, connect_args=search_path_args(url, db.schema), pool_size=pool_size, **kw
        )
        db.engines.append(engine)
        return engine

    engines = {
        DIRECT: make(ctx.pg_url),
        POOLED: make(bouncer.url(ctx.pg_url), pooler="transaction"),
        POOLED_NO_FAST: make(bouncer.url(ctx.pg_url), pooler="transaction", fast_path=False),
    }
    psycopg = psycopg_url(ctx.pg_url)
    if psycopg is not None:
        engines[DIRECT_PSYCOPG] = make(psycopg)
        engines[POOLED_PSYCOPG] = make(bouncer.url(psycopg), pooler="transaction")
    return engines


def _variants(engines: dict[str, AsyncEngine], sample: Any) -> list[Variant]:
    return [
        Variant(name, sample(engine), baseline=name == DIRECT, setup=sample(engine))
        for name, engine in engines.items()
    ]


@workload(
    "pooler.es_append_1",
    "append one event (no unit of work), direct vs PgBouncer transaction mode",
    unit="events/s",
    compare=COMPARE,
)
async def es_append_1(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    engines = await _engines(ctx, db, pool_size=2)
    appends = ctx.size(400)

    def sample(engine: AsyncEngine) -> Any:
        store = SQLAlchemyEventStore(engine)

        async def run() -> float:
            start = time.perf_counter()
            for i in range(appends):
                await store.append(
                    _event(uuid.uuid4().hex, i), expected_version=StreamState.NO_STREAM
                )
            return appends / (time.perf_counter() - start)

        return run

    return _variants(engines, sample)


@workload(
    "pooler.es_writers_8",
    "8 concurrent writers, 5-event unit-of-work transactions, direct vs PgBouncer",
    unit="events/s",
    compare=COMPARE,
)
async def es_writers_8(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    engines = await _engines(ctx, db, pool_size=8)
    per_writer = ctx.size(60)

    def sample(engine: AsyncEngine) -> Any:
        store = SQLAlchemyEventStore(engine)
        factory = db.session_factory(engine)

        async def writer() -> None:
            for i in range(per_writer):
                async with SQLAlchemyUnitOfWork(factory) as uow:
                    stream = uuid.uuid4().hex
                    await store.append([_event(stream, i) for _ in range(5)], uow=uow)
                    await uow.commit()

        async def run() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(writer() for _ in range(8)))
            return 8 * per_writer * 5 / (time.perf_counter() - start)

        return run

    return _variants(engines, sample)


@workload(
    "pooler.outbox_batch50",
    "outbox claim+publish+ack, 4 relays, batch 50, direct vs PgBouncer",
    unit="msgs/s",
    compare=COMPARE,
)
async def outbox_batch50(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    engines = await _engines(ctx, db, pool_size=WORKERS + 1)
    admin = await asyncpg.connect(db.dsn, server_settings={"search_path": db.schema})

    async def close_admin() -> None:
        await admin.close()

    ctx.cleanup.insert(0, close_admin)
    messages = ctx.size(10_000)

    def sample(engine: AsyncEngine) -> Any:
        async def run() -> float:
            await _fill(admin, messages)
            collector = _Collector()
            outbox = SQLAlchemyOutboxStorage(engine, lease_seconds=60)
            relays = [
                OutboxRelay(outbox, collector, batch_size=50, listen=False, max_in_flight=1)
                for _ in range(WORKERS)
            ]

            async def worker(relay: OutboxRelay) -> None:
                async with outbox.queue.pinned():  # as OutboxRelay.run() does
                    while await relay.run_once():
                        pass

            start = time.perf_counter()
            await asyncio.gather(*(worker(r) for r in relays))
            elapsed = time.perf_counter() - start
            if len(collector.ids) != messages or len(set(collector.ids)) != messages:
                raise AssertionError(f"{len(collector.ids)} published of {messages}")
            return messages / elapsed

        return run

    return _variants(engines, sample)
