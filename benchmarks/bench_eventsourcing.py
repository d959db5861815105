"""The ``eventsourcing`` library (PostgreSQL recorder and Application) vs our store vs raw asyncpg.

Same run, same server, interleaved variants. Workloads:

- ``append 1``: one event per transaction (events/s);
- ``append 100``: 100 events per transaction (events/s);
- ``read 1000``: a 1,000-event stream read into typed events (events/s) — for ``eventsourcing``
  the Application variant is its aggregate replay (``app.repository.get``), the recorder variant
  returns untyped ``StoredEvent`` bytes; ours is ``load_events`` (typed ``DomainEvent``s);
- ``8 writers``: eight concurrent writers, one event per transaction, each on its own stream
  (events/s). ``eventsourcing`` serialises its writers with ``LOCK TABLE … IN EXCLUSIVE MODE``;
  ours uses the commit-safe ``xid8`` horizon; raw asyncpg is a plain ``bigserial`` insert.

Raw asyncpg writes the same rows to our table shape (``cqrs_events``), the physical limit on this
stack. ``eventsourcing`` is synchronous (psycopg 3): it runs in the event loop's thread for serial
workloads and in eight threads for the concurrent one. It is only installed in the benchmark
environment (``uv run --group bench ...``); without it its rows say ``skipped``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from benchmarks._pg import BenchDb
from benchmarks.harness import Context, Variant, workload
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.ports.event_store import StoredEvent, StreamState

try:  # only in the benchmark environment
    import eventsourcing  # noqa: F401

    HAVE_EVENTSOURCING = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_EVENTSOURCING = False

SKIPPED_REASON = "skipped: eventsourcing not installed (uv sync --group bench)"
NO_STREAM = StreamState.NO_STREAM


class LineAdded(DomainEvent):
    """The typed event our store reads back (registered in the default registry)."""

    order_id: str
    sku: str
    quantity: int
    price: Decimal
    note: str


def payload(i: int) -> dict[str, Any]:
    """A representative ~150-byte event body."""
    return {
        "order_id": f"order-{i}",
        "sku": f"SKU-{i % 1000:04d}",
        "quantity": i % 7 + 1,
        "price": "19.99",
        "note": "gift wrap, deliver to the side door",
    }


# ---------------------------------------------------------------------------------------------
# raw asyncpg on our table shape
# ---------------------------------------------------------------------------------------------
_RAW_INSERT_1 = (
    "INSERT INTO cqrs_events (event_id, stream_id, version, event_type, aggregate_type, "
    "schema_version, payload, metadata, occurred_at) "
    "VALUES ($1, $2, $3, $4, $5, 1, $6::jsonb, '{}'::jsonb, $7)"
)
_RAW_INSERT_N = (
    "INSERT INTO cqrs_events (event_id, stream_id, version, event_type, aggregate_type, "
    "schema_version, payload, metadata, occurred_at) "
    "SELECT e, $2, v, $4, $5, 1, p::jsonb, '{}'::jsonb, $7 "
    "FROM unnest($1::text[], $3::bigint[], $6::text[]) AS u(e, v, p)"
)
_RAW_READ = (
    "SELECT position, event_id, stream_id, version, event_type, aggregate_type, schema_version, "
    "payload, metadata, occurred_at, correlation_id, causation_id, tenant_id "
    "FROM cqrs_events WHERE stream_id = $1 ORDER BY version"
)


_PLAIN_TABLE = (
    "CREATE TABLE bench_plain_events (position bigserial PRIMARY KEY, "
    "event_id varchar(255) NOT NULL UNIQUE, stream_id varchar(255) NOT NULL, "
    "version bigint NOT NULL, event_type varchar(255) NOT NULL, aggregate_type varchar(255), "
    "schema_version integer NOT NULL, payload jsonb NOT NULL, metadata jsonb NOT NULL, "
    "occurred_at timestamptz NOT NULL, correlation_id varchar(255), causation_id varchar(255), "
    "tenant_id varchar(255), UNIQUE (stream_id, version))"
)


async def raw_append(
    conn: asyncpg.Connection, stream: str, start: int, n: int, *, plain: bool = False
) -> None:
    """One transaction appending ``n`` events to ``stream`` at versions ``start+1..``
    (``plain``: one event into ``bench_plain_events``, no ``xid8`` column)."""
    now = datetime.now(UTC)
    async with conn.transaction():
        if n == 1:
            await conn.execute(
                _RAW_INSERT_1.replace("cqrs_events", "bench_plain_events")
                if plain
                else _RAW_INSERT_1,
                str(uuid.uuid4()),
                stream,
                start + 1,
                "LineAdded",
                "Order",
                json.dumps(payload(start)),
                now,
            )
        else:
            await conn.execute(
                _RAW_INSERT_N,
                [str(uuid.uuid4()) for _ in range(n)],
                stream,
                list(range(start + 1, start + n + 1)),
                "LineAdded",
                "Order",
                [json.dumps(payload(start + i)) for i in range(n)],
                now,
            )


async def raw_read_typed(conn: asyncpg.Connection, stream: str) -> list[LineAdded]:
    """Read a stream into the same typed events ours returns (fetch, decode, validate)."""
    rows = await conn.fetch(_RAW_READ, stream)
    return [
        LineAdded.model_validate(
            {
                **orjson.loads(r["payload"]),
                "event_id": r["event_id"],
                "occurred_at": r["occurred_at"],
                "aggregate_id": r["stream_id"],
                "aggregate_type": r["aggregate_type"],
                "metadata": orjson.loads(r["metadata"]),
            }
        )
        for r in rows
    ]


async def seed_read_streams(pool: asyncpg.Pool, es: EsSide | None, length: int) -> None:
    """The 1,000-event streams the read workloads replay (ours and raw share one)."""
    async with pool.acquire() as conn:
        for start in range(0, length, 100):
            await raw_append(conn, "read-stream", start, min(100, length - start))
    if es is not None:
        side = es

        def save() -> Any:
            order = side.order_cls(order_id="read")
            for i in range(length - 1):
                order.add_line(**payload(i))
            side.app.save(order)
            return order.id

        es.read_id = await asyncio.to_thread(save)


# ---------------------------------------------------------------------------------------------
# our store
# ---------------------------------------------------------------------------------------------
def our_store(engine: AsyncEngine) -> Any:
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

    return SQLAlchemyEventStore(async_sessionmaker(engine, expire_on_commit=False), listen=False)


def our_events(stream: str, start: int, n: int) -> list[StoredEvent]:
    return [
        StoredEvent(
            event_type="LineAdded",
            aggregate_id=stream,
            aggregate_type="Order",
            payload=payload(start + i),
        )
        for i in range(n)
    ]


# ---------------------------------------------------------------------------------------------
# eventsourcing
# ---------------------------------------------------------------------------------------------
@dataclass
class EsSide:
    """An ``eventsourcing`` Application and its recorder in one PostgreSQL schema."""

    app: Any
    recorder: Any
    order_cls: Any
    stored_event_cls: Any
    read_id: Any = None
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8))

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.app.close()


@functools.cache
def _es_classes() -> tuple[Any, Any, Any]:
    """The aggregate and application classes (defined once: eventsourcing registers topics)."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.persistence import StoredEvent as EsStoredEvent

    class Order(Aggregate):
        @event("Created")
        def __init__(self, order_id: str) -> None:
            self.order_id = order_id
            self.lines = 0

        @event("LineAdded")
        def add_line(self, order_id: str, sku: str, quantity: int, price: str, note: str) -> None:
            self.lines += 1

    class BenchApp(Application[Any]):
        pass

    return Order, BenchApp, EsStoredEvent


def es_side(dsn_parts: dict[str, Any], schema: str, pool_size: int = 8) -> EsSide:
    """Build the Application (events table ``benchapp_events`` in ``schema``)."""
    order_cls, app_cls, stored_event_cls = _es_classes()
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dsn_parts["database"],
        "POSTGRES_HOST": dsn_parts["host"],
        "POSTGRES_PORT": str(dsn_parts["port"]),
        "POSTGRES_USER": dsn_parts["user"],
        "POSTGRES_PASSWORD": dsn_parts.get("password") or "",
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "y",
    }
    app = app_cls(env=env)
    return EsSide(app, app.recorder, order_cls, stored_event_cls)


def es_app_append(side: EsSide, n: int) -> None:
    """A new aggregate with ``n`` events (``Created`` + ``n - 1`` ``LineAdded``), one save."""
    order = side.order_cls(order_id="o")
    for i in range(n - 1):
        order.add_line(**payload(i))
    side.app.save(order)


def es_recorder_append(side: EsSide, originator: uuid.UUID, start: int, n: int) -> None:
    """``n`` stored events inserted by the recorder in one transaction (table lock)."""
    side.recorder.insert_events(
        [
            side.stored_event_cls(
                originator_id=originator,
                originator_version=start + i + 1,
                topic="bench:LineAdded",
                state=json.dumps(payload(start + i)).encode(),
            )
            for i in range(n)
        ]
    )


# ---------------------------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------------------------
WRITERS = 8
READ_LEN = 1000
_seq = itertools.count()


def _stream() -> str:
    return f"s-{next(_seq)}-{uuid.uuid4().hex[:6]}"


async def _open(ctx: Context) -> tuple[BenchDb, EsSide | None]:
    db = await BenchDb(ctx, pool_size=WRITERS + 2).open()
    es: EsSide | None = None
    if HAVE_EVENTSOURCING:
        es = await asyncio.to_thread(es_side, db.url_parts, db.schema, WRITERS)

        async def close_es() -> None:
            await asyncio.to_thread(es.close)

        ctx.cleanup.append(close_es)  # runs before the schema is dropped (LIFO)
    else:
        print(f"  {'eventsourcing Application':<34} {SKIPPED_REASON}", flush=True)
        print(f"  {'eventsourcing recorder':<34} {SKIPPED_REASON}", flush=True)
    return db, es


def _rate(events: int, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        # Untimed: a full collection left over from the previous variant's garbage (a replay
        # builds thousands of pydantic models) would otherwise land in this variant's sample.
        gc.collect()
        start = time.perf_counter()
        await fn()
        return events / (time.perf_counter() - start)

    return run


def _append_variants(db: BenchDb, es: EsSide | None, batch: int, txns: int) -> list[Variant]:
    store = our_store(db.engine)
    store_sa_ping = our_store(db.make_engine(pool_pre_ping=True))

    async def raw() -> None:
        async with db.pool.acquire() as conn:
            for _ in range(txns):
                await raw_append(conn, _stream(), 0, batch)

    def ours_with(s: Any) -> Callable[[], Awaitable[None]]:
        async def ours() -> None:
            for _ in range(txns):
                await s.append(our_events(_stream(), 0, batch), expected_version=NO_STREAM)

        return ours

    variants = [
        Variant("raw asyncpg", _rate(batch * txns, raw), baseline=True),
        Variant("ours", _rate(batch * txns, ours_with(store))),
        Variant("ours, pool_pre_ping=True", _rate(batch * txns, ours_with(store_sa_ping))),
    ]
    if es is not None:

        async def app() -> None:
            for _ in range(txns):
                es_app_append(es, batch)

        async def recorder() -> None:
            for _ in range(txns):
                es_recorder_append(es, uuid.uuid4(), 0, batch)

        variants += [
            Variant("eventsourcing Application", _rate(batch * txns, app)),
            Variant("eventsourcing recorder", _rate(batch * txns, recorder)),
        ]
    for v in variants:  # one untimed pass each: connections, prepared statements, caches
        v.setup = _warm(v.run)
    return variants


def _warm(run: Callable[[], Awaitable[float]]) -> Callable[[], Awaitable[None]]:
    async def setup() -> None:
        await run()

    return setup


_COMPARE = (("ours", "eventsourcing Application"), ("ours", "eventsourcing recorder"))
_COMPARE_READ = (
    ("ours", "eventsourcing Application"),
    ("ours get_events (untyped)", "eventsourcing recorder"),
)


@workload(
    "peer.append_1",
    "append 1 event/txn: ours vs eventsourcing vs raw asyncpg",
    unit="events/s",
    compare=_COMPARE if HAVE_EVENTSOURCING else (),
)
async def append_1(ctx: Context) -> list[Variant]:
    db, es = await _open(ctx)
    return _append_variants(db, es, 1, ctx.size(300))


@workload(
    "peer.append_100",
    "append 100 events/txn: ours vs eventsourcing vs raw asyncpg",
    unit="events/s",
    compare=_COMPARE if HAVE_EVENTSOURCING else (),
)
async def append_100(ctx: Context) -> list[Variant]:
    db, es = await _open(ctx)
    return _append_variants(db, es, 100, ctx.size(20))


@workload(
    "peer.read_1000",
    "read a 1,000-event stream into typed events (eventsourcing: aggregate replay)",
    unit="events/s",
    compare=_COMPARE_READ if HAVE_EVENTSOURCING else (),
)
async def read_1000(ctx: Context) -> list[Variant]:
    db, es = await _open(ctx)
    await seed_read_streams(db.pool, es, READ_LEN)
    store = our_store(db.engine)
    reads = ctx.size(40)  # 20 replays per sample at --scale 0.5: one GC pause does not decide it

    async def raw() -> None:
        async with db.pool.acquire() as conn:
            for _ in range(reads):
                assert len(await raw_read_typed(conn, "read-stream")) == READ_LEN

    async def ours() -> None:
        for _ in range(reads):
            events = await store.load_events("read-stream")
            assert len(events) == READ_LEN and isinstance(events[-1], LineAdded)

    async def ours_untyped() -> None:
        for _ in range(reads):
            assert len(await store.get_events("read-stream")) == READ_LEN

    variants = [
        Variant("raw asyncpg", _rate(READ_LEN * reads, raw), baseline=True),
        Variant("ours", _rate(READ_LEN * reads, ours)),
        # like the recorder: stored records, no typed events
        Variant("ours get_events (untyped)", _rate(READ_LEN * reads, ours_untyped)),
    ]
    if es is not None:
        es_id = es.read_id

        async def app() -> None:
            for _ in range(reads):
                assert es.app.repository.get(es_id).version == READ_LEN

        async def recorder() -> None:
            for _ in range(reads):
                assert len(es.recorder.select_events(es_id)) == READ_LEN

        variants += [
            Variant("eventsourcing Application", _rate(READ_LEN * reads, app)),
            Variant("eventsourcing recorder", _rate(READ_LEN * reads, recorder)),
        ]
    for v in variants:
        v.setup = _warm(v.run)
    return variants


@workload(
    "peer.writers_8",
    "8 writers, 1 event/txn: ours (commit-safe) vs eventsourcing (table lock) vs bigserial",
    unit="events/s",
    compare=(("ours", "eventsourcing recorder"),) if HAVE_EVENTSOURCING else (),
)
async def writers_8(ctx: Context) -> list[Variant]:
    db, es = await _open(ctx)
    per_writer = ctx.size(40)
    total = WRITERS * per_writer
    store = our_store(db.engine)
    store_sa_ping = our_store(db.make_engine(pool_pre_ping=True))

    async with db.pool.acquire() as conn:
        await conn.execute(_PLAIN_TABLE)

    def raw_into(plain: bool) -> Callable[[], Awaitable[None]]:
        async def raw() -> None:
            async def one(_: int) -> None:
                async with db.pool.acquire() as conn:
                    for _ in range(per_writer):
                        await raw_append(conn, _stream(), 0, 1, plain=plain)

            await asyncio.gather(*(one(w) for w in range(WRITERS)))

        return raw

    def ours_with(s: Any) -> Callable[[], Awaitable[None]]:
        async def ours() -> None:
            async def one(_: int) -> None:
                for _ in range(per_writer):
                    await s.append(our_events(_stream(), 0, 1), expected_version=NO_STREAM)

            await asyncio.gather(*(one(w) for w in range(WRITERS)))

        return ours

    variants = [
        Variant("raw asyncpg bigserial", _rate(total, raw_into(True)), baseline=True),
        # the same raw INSERT into our table: what the xid8 column and its index cost the server
        Variant("raw asyncpg into cqrs_events (xid8)", _rate(total, raw_into(False))),
        Variant("ours", _rate(total, ours_with(store))),
        Variant("ours, pool_pre_ping=True", _rate(total, ours_with(store_sa_ping))),
    ]
    if es is not None:

        async def recorder() -> None:
            def one(_: int) -> None:
                for _ in range(per_writer):
                    es_recorder_append(es, uuid.uuid4(), 0, 1)

            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(es.executor, one, w) for w in range(WRITERS))
            )

        variants.append(Variant("eventsourcing recorder", _rate(total, recorder)))
    for v in variants:
        v.setup = _warm(v.run)
    return variants
