"""A tailing subscriber's lag while 8 writers append (one event per transaction).

Writers run flat out; one tailer follows the global log. Per event, lag = the moment the tailer
yields it - the moment its writer's commit returned (clamped at 0: the tailer may see an event
before the writer's coroutine resumes). Reported: tailer lag p50 / p95 / max (ms), events/s
written, and the events the tailer missed or saw twice (must be 0 / 0).

Variants:

- ``ours``: ``SQLAlchemyEventStore.subscribe`` (commit-safe ``xid8`` horizon, ``(txid,
  position)`` cursor, NOTIFY wake-ups, 0.5 s poll fallback);
- ``ours (lock table)``: ``Ordering.LOCK_TABLE`` (serialised appends, position cursor);
- ``raw asyncpg (position cursor)``: a ``bigserial`` table, NOTIFY, and the naive tailer
  ``WHERE position > :last ORDER BY position`` — as fast as it gets, and it can skip events whose
  transaction drew a position before a later one committed (counted as missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from benchmarks._pg import BenchDb
from benchmarks.harness import Context, Variant, workload
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.ports.event_store import StoredEvent

WRITERS = 8
_STOP = "BenchTailStop"
#: A run that takes longer than this is reported as failed (NaN), never hangs the suite.
RUN_LIMIT_S = 120.0

RAW_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_raw_tail ("
    " position bigserial PRIMARY KEY, event_id text NOT NULL, stream_id text NOT NULL,"
    " payload jsonb NOT NULL)"
)
_RAW_INSERT = (
    "WITH ins AS (INSERT INTO bench_raw_tail (event_id, stream_id, payload) "
    "VALUES ($1, $2, $3::jsonb) RETURNING position) "
    "SELECT position, pg_notify('bench_raw_tail', '') FROM ins"
)
_RAW_PAGE = (
    "SELECT position, event_id FROM bench_raw_tail WHERE position > $1 ORDER BY position LIMIT 500"
)


@dataclass
class TailRun:
    """What one run observed."""

    committed: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    write_seconds: float = 0.0

    def lags_ms(self) -> list[float]:
        return sorted(
            max(0.0, (self.received[k] - t) * 1000)
            for k, t in self.committed.items()
            if k in self.received
        )

    def summary(self) -> dict[str, float]:
        lags = self.lags_ms()

        def pct(p: float) -> float:
            return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")

        return {
            "lag_p50_ms": pct(0.50),
            "lag_p95_ms": pct(0.95),
            "lag_max_ms": lags[-1] if lags else float("nan"),
            "events_per_s": len(self.committed) / self.write_seconds if self.write_seconds else 0,
            "missed": float(len(set(self.committed) - set(self.received))),
            "duplicates": float(self.duplicates),
        }


async def _drain(run: TailRun, limit_s: float) -> None:
    """Wait until the tailer has everything the writers committed (or ``limit_s``)."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if all(k in run.received for k in run.committed):
            return
        await asyncio.sleep(0.01)


def _note(run: TailRun, event_id: str) -> None:
    if event_id in run.received:
        run.duplicates += 1
    else:
        run.received[event_id] = time.perf_counter()


async def run_ours(
    engine: AsyncEngine, per_writer: int, *, lock_table: bool = False, poll_interval: float = 0.5
) -> TailRun:
    """Writers + one tailer on ``SQLAlchemyEventStore`` (the table must be empty)."""
    from cqrs_ddd_persistence_sqlalchemy.core import Ordering, SQLAlchemyEventStore

    sf = async_sessionmaker(engine, expire_on_commit=False)
    ordering = Ordering.LOCK_TABLE if lock_table else Ordering.COMMIT_SAFE
    store = SQLAlchemyEventStore(sf, ordering=ordering, poll_interval=poll_interval)
    run = TailRun()
    started = asyncio.Event()

    async def tail() -> None:
        started.set()
        # aclosing: leaving the loop closes the generator now (its LISTEN connection too)
        async with contextlib.aclosing(store.subscribe(batch_size=500)) as events:
            async for event in events:
                if event.event_type == _STOP:
                    return
                _note(run, event.event_id)

    async def writer(w: int) -> None:
        for i in range(per_writer):
            event = StoredEvent(
                event_type="Tick", aggregate_id=f"w{w}-{i}", payload={"w": w, "i": i}
            )
            await store.append(event)
            run.committed[event.event_id] = time.perf_counter()

    tailer = asyncio.create_task(tail())
    try:
        await started.wait()
        await asyncio.sleep(0.2)  # the LISTEN is in place
        t0 = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
        run.write_seconds = time.perf_counter() - t0
        await _drain(run, limit_s=5.0)
    finally:
        # Stop the tailer with an event rather than a cancellation: cancelling a task inside
        # a SQLAlchemy operation can leave its pooled connection checked out.
        await store.append(StoredEvent(event_type=_STOP, aggregate_id=f"stop-{uuid.uuid4()}"))
        try:
            await asyncio.wait_for(asyncio.shield(tailer), 5.0)
        except TimeoutError:
            tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tailer
    return run


async def run_raw(pool: asyncpg.Pool, per_writer: int) -> TailRun:
    """Writers + the naive position-cursor tailer on a ``bigserial`` table."""
    run = TailRun()
    woken = asyncio.Event()
    listener = await pool.acquire()

    def wake(*_: Any) -> None:
        woken.set()

    await listener.add_listener("bench_raw_tail", wake)

    cursor = [0]

    async def tail() -> None:
        async with pool.acquire() as conn:
            while True:
                woken.clear()
                rows = await conn.fetch(_RAW_PAGE, cursor[0])
                for r in rows:
                    _note(run, r["event_id"])
                if rows:
                    cursor[0] = rows[-1]["position"]
                if len(rows) == 500:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), 0.5)

    async def writer(w: int) -> None:
        async with pool.acquire() as conn:
            for i in range(per_writer):
                event_id = str(uuid.uuid4())
                async with conn.transaction():
                    await conn.execute(
                        _RAW_INSERT, event_id, f"w{w}-{i}", json.dumps({"w": w, "i": i})
                    )
                run.committed[event_id] = time.perf_counter()

    tailer = asyncio.create_task(tail())
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
        run.write_seconds = time.perf_counter() - t0
        # The naive tailer never gets back what it skipped: wait until its cursor has reached
        # the last position written (or everything arrived), not for the missing events.
        async with pool.acquire() as conn:
            end = await conn.fetchval("SELECT coalesce(max(position), 0) FROM bench_raw_tail")
        for _ in range(200):  # at most ~2 s
            if cursor[0] >= end:
                break
            await asyncio.sleep(0.01)
    finally:
        tailer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tailer
        await listener.remove_listener("bench_raw_tail", wake)
        await pool.release(listener)
    return run


async def reset(pool: asyncpg.Pool) -> None:
    """Empty both tables between runs (each run's tailer starts from the beginning).

    ``DELETE``, not ``TRUNCATE``: a cancelled tailer's connection may still hold a share lock
    for a moment, and ``TRUNCATE`` would wait for it.
    """
    async with pool.acquire() as conn:
        await conn.execute(RAW_DDL)
        await conn.execute("DELETE FROM bench_raw_tail")
        await conn.execute("DELETE FROM cqrs_events")


# ---------------------------------------------------------------------------------------------
# harness registration
# ---------------------------------------------------------------------------------------------
@workload(
    "tail.lag",
    "tailing subscriber lag p95 while 8 writers append 1 event/txn (missed must be 0)",
    unit="ms p95",
    higher_is_better=False,
)
async def tail_lag(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx, pool_size=WRITERS + 4).open()
    per_writer = ctx.size(60)

    def variant(name: str, go: Any) -> Variant:
        async def run() -> float:
            await reset(db.pool)
            try:
                result = (await asyncio.wait_for(go(), RUN_LIMIT_S)).summary()
            except TimeoutError:
                print(f"    {name:<30} timed out after {RUN_LIMIT_S:.0f} s", flush=True)
                return float("nan")
            print(
                f"    {name:<30} p50 {result['lag_p50_ms']:.1f} ms, p95 "
                f"{result['lag_p95_ms']:.1f} ms, max {result['lag_max_ms']:.1f} ms, "
                f"{result['events_per_s']:,.0f} events/s written, missed "
                f"{result['missed']:.0f}, duplicates {result['duplicates']:.0f}",
                flush=True,
            )
            return result["lag_p95_ms"]

        return Variant(name, run, baseline=name.startswith("raw"))

    return [
        variant("raw asyncpg (position cursor)", lambda: run_raw(db.pool, per_writer)),
        variant("ours", lambda: run_ours(db.engine, per_writer)),
        variant("ours (lock table)", lambda: run_ours(db.engine, per_writer, lock_table=True)),
    ]
