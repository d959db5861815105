"""Event store workloads: ``SQLAlchemyEventStore`` vs raw asyncpg, same server, same run.

- ``es.append_1``: one event per transaction (events/s). Raw: ``INSERT`` in a transaction.
- ``es.append_100``: 100-event batches (events/s). Raw: ``executemany`` in a transaction,
  versions computed client-side (no expected-version check, no idempotency, no NOTIFY).
- ``es.read_1000``: a 1,000-event stream read into typed ``DomainEvent``s (events/s). Raw:
  ``fetch`` + ``orjson.loads`` + ``model_validate``.
- ``es.writers_8``: 8 concurrent writers, 5-event transactions, each on its own streams
  (events/s): the store's commit-safe ordering (with and without NOTIFY), the same store in
  ``LOCK TABLE … IN EXCLUSIVE MODE`` mode, and raw asyncpg into a plain ``bigserial`` table
  (the baseline: what PostgreSQL does with no ordering guarantee at all).

Each workload also runs ``ours (psycopg)`` (the store on a psycopg 3 engine; commit-safe for 8
writers) against ``raw psycopg`` (the raw asyncpg code's statements and JSON encoding on psycopg)
and reports their ratio; raw asyncpg stays the baseline (``benchmarks/README.md``).

Targets (issue 5): append_100 >= 0.8x raw; commit-safe >= 2x lock-table with 8 writers.
Run: ``uv run python -m benchmarks.run 'es.*'``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from benchmarks._pg import OURS_PSYCOPG, PSYCOPG_COMPARE, RAW_PSYCOPG, BenchDb, PsycopgSql
from benchmarks.harness import Context, Variant, workload
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import DomainEvent, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.core import Ordering, SQLAlchemyEventStore

WRITERS = 8


class BenchLineAdded(DomainEvent):
    sku: str
    qty: int
    price: str
    note: str


def _payload(i: int) -> dict[str, Any]:
    return {"sku": f"SKU-{i % 97:04d}", "qty": i % 7 + 1, "price": "12.50", "note": "x" * 40}


def _events(stream: str, n: int) -> list[StoredEvent]:
    return [
        StoredEvent(
            event_type="BenchLineAdded",
            aggregate_id=stream,
            aggregate_type="Order",
            payload=_payload(i),
        )
        for i in range(n)
    ]


_RAW_INSERT = (
    "INSERT INTO cqrs_events (event_id, stream_id, version, event_type, aggregate_type, "
    "schema_version, payload, metadata, occurred_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9)"
)
_PLAIN_TABLE = """
CREATE TABLE bench_plain_events (
    position bigserial PRIMARY KEY,
    event_id varchar(255) NOT NULL UNIQUE,
    stream_id varchar(255) NOT NULL,
    version bigint NOT NULL,
    event_type varchar(255) NOT NULL,
    aggregate_type varchar(255),
    schema_version integer NOT NULL,
    payload jsonb NOT NULL,
    metadata jsonb NOT NULL,
    occurred_at timestamptz NOT NULL,
    UNIQUE (stream_id, version)
)
"""
_PLAIN_INSERT = _RAW_INSERT.replace("cqrs_events", "bench_plain_events")
_PG_INSERT = PsycopgSql(_RAW_INSERT)
_PG_PLAIN_INSERT = PsycopgSql(_PLAIN_INSERT)


def _raw_rows(stream: str, n: int, start: int = 0) -> list[tuple[Any, ...]]:
    # The same work ours does per event: JSON-encode payload and metadata, stamp the time.
    now = datetime.now(UTC)
    return [
        (
            str(uuid.uuid4()),
            stream,
            start + i + 1,
            "BenchLineAdded",
            "Order",
            1,
            orjson.dumps(_payload(i)).decode(),
            orjson.dumps({}).decode(),
            now,
        )
        for i in range(n)
    ]


async def _open(ctx: Context) -> _Db:
    """A throw-away schema with the library tables (``BenchDb``) plus the plain baseline table."""
    db = _Db(ctx, pool_size=WRITERS + 2)
    await db.open()
    async with db.pool.acquire() as conn:
        await conn.execute(_PLAIN_TABLE)
    # The library's checkout guard (postgres/pool.py) replaced SQLAlchemy's pre-ping, which
    # costs 3 round trips per checkout on asyncpg (BEGIN; ; ROLLBACK); an engine with the
    # pre-ping (the former default) shows what the guard saves.
    db.engine_sa_ping = db.make_engine(pool_pre_ping=True)
    db.psycopg_engine = db.make_psycopg_engine()
    return db


class _Db(BenchDb):
    engine_sa_ping: AsyncEngine
    psycopg_engine: AsyncEngine | None  # None without psycopg: no psycopg variants

    def store(
        self, *, sa_ping: bool = False, own_pool: bool = False, psycopg: bool = False, **kw: Any
    ) -> SQLAlchemyEventStore:
        """A store on the shared engine, the pre-ping engine, the psycopg engine, or
        (``own_pool``) an engine of its own: variants measured side by side then share no
        pooled connection (and no server-side state of those connections) with each other."""
        engine: AsyncEngine | None
        if psycopg:
            engine = self.make_psycopg_engine() if own_pool else self.psycopg_engine
        elif own_pool:
            engine = self.make_engine(pool_pre_ping=True) if sa_ping else self.make_engine()
        else:
            engine = self.engine_sa_ping if sa_ping else self.engine
        assert engine is not None, "psycopg variants are built only when psycopg is installed"
        return SQLAlchemyEventStore(self.session_factory(engine), listen=False, **kw)


_seq = itertools.count()


def _stream() -> str:
    return f"s-{next(_seq)}-{uuid.uuid4().hex[:6]}"


def raw_psycopg_appends(db: BenchDb, batch: int, transactions: int) -> Any:
    """The raw asyncpg append loop on a held psycopg connection (one sample per call)."""

    async def run() -> float:
        (conn,) = await db.psycopg_connections()
        start = time.perf_counter()
        for _ in range(transactions):
            rows = _raw_rows(_stream(), batch)
            async with conn.transaction():
                if batch == 1:
                    await conn.execute(_PG_INSERT.sql, _PG_INSERT.args(*rows[0]))
                else:
                    async with conn.cursor() as cur:
                        await cur.executemany(_PG_INSERT.sql, _PG_INSERT.rows(rows))
        return batch * transactions / (time.perf_counter() - start)

    return run


def _append_variants(db: _Db, batch: int, transactions: int) -> list[Variant]:
    def appender(store: SQLAlchemyEventStore) -> Any:
        async def run() -> float:
            start = time.perf_counter()
            for _ in range(transactions):
                await store.append(
                    _events(_stream(), batch), expected_version=StreamState.NO_STREAM
                )
            return batch * transactions / (time.perf_counter() - start)

        return run

    ours = appender(db.store())
    ours_sa_ping = appender(db.store(sa_ping=True))

    async def raw() -> float:
        async with db.pool.acquire() as conn:
            start = time.perf_counter()
            for _ in range(transactions):
                rows = _raw_rows(_stream(), batch)
                async with conn.transaction():
                    if batch == 1:
                        await conn.execute(_RAW_INSERT, *rows[0])
                    else:
                        await conn.executemany(_RAW_INSERT, rows)
            return batch * transactions / (time.perf_counter() - start)

    async def warm() -> None:
        await ours()
        await raw()

    variants = [
        Variant("ours", ours, setup=warm),
        Variant("ours, pool_pre_ping=True", ours_sa_ping),
        Variant("raw asyncpg", raw, baseline=True),
    ]
    if db.psycopg_engine is None:
        return variants
    ours_psycopg = appender(db.store(psycopg=True))
    raw_psycopg = raw_psycopg_appends(db, batch, transactions)
    return [
        *variants,
        Variant(OURS_PSYCOPG, ours_psycopg, setup=ours_psycopg),
        Variant(RAW_PSYCOPG, raw_psycopg, setup=raw_psycopg),
    ]


@workload(
    "es.append_1", "append one event per transaction", unit="events/s", compare=PSYCOPG_COMPARE
)
async def append_1(ctx: Context) -> list[Variant]:
    db = await _open(ctx)
    return _append_variants(db, 1, ctx.size(400))


@workload("es.append_100", "append 100-event batches", unit="events/s", compare=PSYCOPG_COMPARE)
async def append_100(ctx: Context) -> list[Variant]:
    db = await _open(ctx)
    return _append_variants(db, 100, ctx.size(40))


@workload(
    "es.read_1000",
    "read a 1,000-event stream into typed events",
    unit="events/s",
    compare=PSYCOPG_COMPARE,
)
async def read_1000(ctx: Context) -> list[Variant]:
    db = await _open(ctx)
    store = db.store()
    stream = "read-stream"
    for _ in range(10):
        await store.append(_events(stream, 100))
    reads = ctx.size(40)  # 20 replays per sample at --scale 0.5: one GC pause does not decide it
    raw_sql = (
        "SELECT event_id, event_type, version, schema_version, payload, metadata, occurred_at, "
        "aggregate_type, correlation_id, causation_id FROM cqrs_events WHERE stream_id = $1 "
        "ORDER BY version"
    )

    def reader(store: SQLAlchemyEventStore) -> Any:
        async def run() -> float:
            gc.collect()  # untimed: the previous variant's garbage is not this sample's cost
            start = time.perf_counter()
            for _ in range(reads):
                events = await store.load_events(stream)
                assert len(events) == 1000 and isinstance(events[0], BenchLineAdded)
            return 1000 * reads / (time.perf_counter() - start)

        return run

    ours = reader(store)

    async def raw() -> float:
        async with db.pool.acquire() as conn:
            gc.collect()
            start = time.perf_counter()
            for _ in range(reads):
                rows = await conn.fetch(raw_sql, stream)
                events = [
                    BenchLineAdded.model_validate(
                        {
                            **orjson.loads(r["payload"]),
                            "event_id": r["event_id"],
                            "occurred_at": r["occurred_at"],
                            "aggregate_id": stream,
                            "aggregate_type": r["aggregate_type"],
                            "metadata": orjson.loads(r["metadata"]),
                        }
                    )
                    for r in rows
                ]
                assert len(events) == 1000
            return 1000 * reads / (time.perf_counter() - start)

    async def warm() -> None:
        await ours()
        await raw()

    variants = [Variant("ours", ours, setup=warm), Variant("raw asyncpg", raw, baseline=True)]
    if db.psycopg_engine is None:
        return variants
    ours_psycopg = reader(db.store(psycopg=True))
    pg_sql = PsycopgSql(raw_sql)

    async def raw_psycopg() -> float:
        (conn,) = await db.psycopg_connections()
        gc.collect()
        start = time.perf_counter()
        for _ in range(reads):
            rows = await (await conn.execute(pg_sql.sql, pg_sql.args(stream))).fetchall()
            # the columns of raw_sql by position: psycopg's default rows are tuples
            events = [
                BenchLineAdded.model_validate(
                    {
                        **orjson.loads(r[4]),
                        "event_id": r[0],
                        "occurred_at": r[6],
                        "aggregate_id": stream,
                        "aggregate_type": r[7],
                        "metadata": orjson.loads(r[5]),
                    }
                )
                for r in rows
            ]
            assert len(events) == 1000
        return 1000 * reads / (time.perf_counter() - start)

    return [
        *variants,
        Variant(OURS_PSYCOPG, ours_psycopg, setup=ours_psycopg),
        Variant(RAW_PSYCOPG, raw_psycopg, setup=raw_psycopg),
    ]


@workload(
    "es.writers_8",
    "8 concurrent writers, 5-event transactions",
    unit="events/s",
    compare=(
        ("ours commit-safe", "ours LOCK TABLE"),
        ("ours commit-safe, no NOTIFY", "ours LOCK TABLE"),
        *PSYCOPG_COMPARE,
    ),
)
async def writers_8(ctx: Context) -> list[Variant]:
    db = await _open(ctx)
    per_writer = ctx.size(80)  # 40 at --scale 0.5: samples of ~0.1 s, not ~40 ms
    batch = 5

    def ours(store: SQLAlchemyEventStore) -> Any:
        async def run() -> float:
            async def writer(w: int) -> None:
                for _ in range(per_writer):
                    await store.append(
                        _events(_stream(), batch), expected_version=StreamState.NO_STREAM
                    )

            start = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(WRITERS)))
            return WRITERS * per_writer * batch / (time.perf_counter() - start)

        return run

    async def raw_plain() -> float:
        async def writer(w: int) -> None:
            async with db.pool.acquire() as conn:
                for _ in range(per_writer):
                    async with conn.transaction():
                        await conn.executemany(_PLAIN_INSERT, _raw_rows(_stream(), batch))

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
        return WRITERS * per_writer * batch / (time.perf_counter() - start)

    # Each configuration on a pool of its own, every one warmed before the first sample:
    # with one shared pool, the LOCK TABLE variant's session-path appends (every one of them
    # notifying) measurably slowed the next commit-safe samples that shared its connections.
    safe = ours(db.store(own_pool=True))
    quiet = ours(db.store(notify=False, own_pool=True))
    sa_ping = ours(db.store(sa_ping=True, own_pool=True))
    locked = ours(db.store(ordering=Ordering.LOCK_TABLE, own_pool=True))
    variants = [
        Variant("ours commit-safe", safe, setup=safe),
        Variant("ours commit-safe, no NOTIFY", quiet, setup=quiet),
        Variant("ours commit-safe, pool_pre_ping=True", sa_ping, setup=sa_ping),
        Variant("ours LOCK TABLE", locked, setup=locked),
        Variant("raw asyncpg bigserial", raw_plain, baseline=True, setup=raw_plain),
    ]
    if db.psycopg_engine is None:
        return variants
    safe_psycopg = ours(db.store(psycopg=True, own_pool=True))

    async def raw_plain_psycopg() -> float:
        async def writer(conn: Any) -> None:
            for _ in range(per_writer):
                rows = _raw_rows(_stream(), batch)
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.executemany(_PG_PLAIN_INSERT.sql, _PG_PLAIN_INSERT.rows(rows))

        conns = await db.psycopg_connections(WRITERS)
        start = time.perf_counter()
        await asyncio.gather(*(writer(c) for c in conns))
        return WRITERS * per_writer * batch / (time.perf_counter() - start)

    return [
        *variants,
        Variant(OURS_PSYCOPG, safe_psycopg, setup=safe_psycopg),
        Variant(RAW_PSYCOPG, raw_plain_psycopg, setup=raw_plain_psycopg),
    ]
