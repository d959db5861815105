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
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.ports.event_store import StoredEvent, StreamState

try:  # only in the benchmark environment
    import eventsourcing  # noqa: F401

    HAVE_EVENTSOURCING = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_EVENTSOURCING = False

SKIPPED_REASON = "skipped: eventsourcing not installed (uv run --group bench ...)"


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


async def raw_append(conn: asyncpg.Connection, stream: str, start: int, n: int) -> None:
    """One transaction appending ``n`` events to ``stream`` at versions ``start+1..``."""
    now = datetime.now(UTC)
    async with conn.transaction():
        if n == 1:
            await conn.execute(
                _RAW_INSERT_1,
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


async def raw_read_typed(conn: asyncpg.Connection, stream: str) -> list[Any]:
    """Read a stream and decode each payload (the least work that yields typed data)."""
    rows = await conn.fetch(_RAW_READ, stream)
    return [(r["event_type"], r["version"], json.loads(r["payload"])) for r in rows]


# ---------------------------------------------------------------------------------------------
# our store
# ---------------------------------------------------------------------------------------------
def our_store(engine: AsyncEngine) -> Any:
    from cqrs_ddd_persistence_sqlalchemy.core.event_store import SQLAlchemyEventStore

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


def es_side(dsn_parts: dict[str, Any], schema: str, pool_size: int = 8) -> EsSide:
    """Build the Application (events table ``benchapp_events`` in ``schema``)."""
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
    app = BenchApp(env=env)
    return EsSide(app, app.recorder, Order, EsStoredEvent)


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
# workloads (each variant: an async callable doing ``n`` operations)
# ---------------------------------------------------------------------------------------------
Op = Callable[[int], Awaitable[None]]


@dataclass
class Workload:
    name: str
    unit: str
    per_op: int  # events per operation
    variants: dict[str, Op | None]  # None: skipped


async def _concurrently(n_workers: int, fn: Callable[[int], Awaitable[None]]) -> None:
    await asyncio.gather(*(fn(w) for w in range(n_workers)))


def workloads(
    *,
    pool: asyncpg.Pool,
    engine: AsyncEngine,
    es: EsSide | None,
    read_stream_len: int,
) -> list[Workload]:
    """The four workloads over prepared fixtures (the read streams must exist)."""
    store = our_store(engine)
    seq = iter(range(10**12))

    def stream() -> str:
        return f"s-{next(seq)}"

    # ---- append 1 / append 100
    def raw_appender(k: int) -> Op:
        async def run(n: int) -> None:
            async with pool.acquire() as conn:
                for _ in range(n):
                    await raw_append(conn, stream(), 0, k)

        return run

    def ours_appender(k: int) -> Op:
        async def run(n: int) -> None:
            for _ in range(n):
                events = our_events(stream(), 0, k)
                await store.append(events, expected_version=StreamState.NO_STREAM)

        return run

    def es_app_appender(k: int) -> Op | None:
        if es is None:
            return None

        async def run(n: int) -> None:
            for _ in range(n):
                es_app_append(es, k)

        return run

    def es_rec_appender(k: int) -> Op | None:
        if es is None:
            return None

        async def run(n: int) -> None:
            for _ in range(n):
                es_recorder_append(es, uuid.uuid4(), 0, k)

        return run

    # ---- read 1000
    async def raw_read(n: int) -> None:
        async with pool.acquire() as conn:
            for _ in range(n):
                events = await raw_read_typed(conn, "read-stream")
                assert len(events) == read_stream_len

    async def ours_read(n: int) -> None:
        for _ in range(n):
            events = await store.load_events("read-stream")
            assert len(events) == read_stream_len

    es_read_app: Op | None = None
    es_read_rec: Op | None = None
    if es is not None:
        es_id = es.read_id

        async def _es_read_app(n: int) -> None:
            for _ in range(n):
                order = es.app.repository.get(es_id)
                assert order.version == read_stream_len

        async def _es_read_rec(n: int) -> None:
            for _ in range(n):
                assert len(es.recorder.select_events(es_id)) == read_stream_len

        es_read_app, es_read_rec = _es_read_app, _es_read_rec

    # ---- 8 writers
    writers = 8

    async def raw_writers(n: int) -> None:
        async def one(_: int) -> None:
            async with pool.acquire() as conn:
                for _ in range(n):
                    await raw_append(conn, stream(), 0, 1)

        await _concurrently(writers, one)

    async def ours_writers(n: int) -> None:
        async def one(_: int) -> None:
            for _ in range(n):
                await store.append(our_events(stream(), 0, 1))

        await _concurrently(writers, one)

    es_writers: Op | None = None
    if es is not None:

        async def _es_writers(n: int) -> None:
            def one(_: int) -> None:
                for _ in range(n):
                    es_recorder_append(es, uuid.uuid4(), 0, 1)

            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(es.executor, one, w) for w in range(writers))
            )

        es_writers = _es_writers

    return [
        Workload(
            "append 1 event/txn",
            "events/s",
            1,
            {
                "raw asyncpg": raw_appender(1),
                "ours": ours_appender(1),
                "eventsourcing Application": es_app_appender(1),
                "eventsourcing recorder": es_rec_appender(1),
            },
        ),
        Workload(
            "append 100 events/txn",
            "events/s",
            100,
            {
                "raw asyncpg": raw_appender(100),
                "ours": ours_appender(100),
                "eventsourcing Application": es_app_appender(100),
                "eventsourcing recorder": es_rec_appender(100),
            },
        ),
        Workload(
            f"read {read_stream_len}-event stream",
            "events/s",
            read_stream_len,
            {
                "raw asyncpg": raw_read,
                "ours": ours_read,
                "eventsourcing Application": es_read_app,
                "eventsourcing recorder": es_read_rec,
            },
        ),
        Workload(
            "8 writers, 1 event/txn",
            "events/s",
            writers,
            {
                "raw asyncpg": raw_writers,
                "ours": ours_writers,
                "eventsourcing recorder": es_writers,
            },
        ),
    ]


async def seed_read_streams(
    pool: asyncpg.Pool, engine: AsyncEngine, es: EsSide | None, length: int
) -> None:
    """The 1,000-event streams the read workloads replay (ours/raw share one)."""
    async with pool.acquire() as conn:
        for start in range(0, length, 100):
            await raw_append(conn, "read-stream", start, min(100, length - start))
    if es is not None:
        order = es.order_cls(order_id="read")
        for i in range(length - 1):
            order.add_line(**payload(i))
        es.app.save(order)
        es.read_id = order.id


async def timed(op: Op, n: int) -> float:
    start = time.perf_counter()
    await op(n)
    return time.perf_counter() - start
