"""Outbox claim + publish + ack: our relay vs a hand-written raw-asyncpg SKIP LOCKED loop.

Both sides drain the same ``outbox_messages`` table (refilled before every run) with 4
concurrent workers on PostgreSQL, at batch sizes 1 and 50:

- ours: ``OutboxRelay.run_once()`` over ``SQLAlchemyOutboxStorage`` (claim statement, decoded
  ``OutboxMessage`` objects, publish to an in-memory publisher, fenced ack);
- raw: asyncpg, the same claim (``WITH … FOR UPDATE SKIP LOCKED … UPDATE … RETURNING``), the
  JSON columns decoded with ``json.loads``, the same no-op publish, and a fenced
  ``UPDATE … WHERE id = ANY($1) AND lease_token = $2``; each statement in autocommit, on one
  connection held per worker (no pool round trips at all).

Through the harness, both are also measured on psycopg 3: ``ours (psycopg)`` (the same relay
on a ``postgresql+psycopg://`` engine) against ``raw psycopg`` (the raw loop's statements and
``json.loads`` on 4 psycopg connections in autocommit), their ratio reported; the raw asyncpg
loop stays the baseline. Without psycopg those two variants are skipped with a note.

Every run checks that each message was processed exactly once (zero duplicates).
Target (issue 6): ours >= 0.8x raw throughput at batch 50.

Through the harness: ``uv run python -m benchmarks.run queue.*`` (workloads
``queue.outbox_batch1`` and ``queue.outbox_batch50``). Standalone:
``uv run python benchmarks/bench_queue.py [--messages 20000] [--url ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table

if __package__ in (
    None,
    "",
):  # ``python benchmarks/bench_queue.py``: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# after the path fix above: the standalone run imports the package from the repository root
from benchmarks._pg import (
    OURS_PSYCOPG,
    PSYCOPG_COMPARE,
    RAW_PSYCOPG,
    PsycopgSql,
    connect_psycopg,
    psycopg_url,
    search_path_args,
)

PG_URL = os.environ.get(
    "CQRS_BENCH_POSTGRES_URL",
    os.environ.get("CQRS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
)
WORKERS = 4

CLAIM_SQL = """
WITH c AS MATERIALIZED (
    SELECT id FROM outbox_messages
    WHERE status = 'pending' AND available_at <= $1
      AND (locked_until IS NULL OR locked_until <= $1)
    ORDER BY id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox_messages AS t SET lease_token = $3, locked_until = $4
FROM c WHERE t.id = c.id
RETURNING t.*
"""
ACK_SQL = """
UPDATE outbox_messages
SET status = 'done', finished_at = $3, lease_token = NULL, locked_until = NULL
WHERE id = ANY($1::bigint[]) AND lease_token = $2
"""
_PG_CLAIM = PsycopgSql(CLAIM_SQL)
_PG_ACK = PsycopgSql(ACK_SQL)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Collector:
    """The no-op broker both sides publish to: records ids to check for duplicates."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def publish(self, message: OutboxMessage) -> None:
        self.ids.append(message.message_id)


async def _fill(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute("TRUNCATE outbox_messages")
    now = datetime.now(UTC)
    payload = json.dumps({"order_id": "o-1", "total": "12.50", "lines": [1, 2, 3]})
    await conn.copy_records_to_table(
        "outbox_messages",
        columns=[
            "status",
            "available_at",
            "attempts",
            "created_at",
            "message_id",
            "event_type",
            "payload",
            "metadata",
            "partition_key",
        ],
        records=[
            ("pending", now, 0, now, uuid.uuid4().hex, "OrderPlaced", payload, "{}", f"a{i % 500}")
            for i in range(n)
        ],
    )
    await conn.execute("ANALYZE outbox_messages")


async def _run_ours(url: str, schema: str, n: int, batch: int) -> tuple[float, list[str]]:
    engine = create_engine(url, connect_args=search_path_args(url, schema), pool_size=WORKERS + 1)
    collector = _Collector()
    outbox = SQLAlchemyOutboxStorage(engine, lease_seconds=60)
    relays = [
        OutboxRelay(outbox, collector, batch_size=batch, listen=False, max_in_flight=1)
        for _ in range(WORKERS)
    ]

    # Warm up as the raw side's pool is: every worker's connection open, statements prepared.
    async def warm() -> None:
        async with engine.connect() as conn:
            await asyncio.sleep(0.05)  # hold it so that each warm-up opens its own connection
            await conn.rollback()

    await asyncio.gather(*(warm() for _ in range(WORKERS)))
    await relays[0].run_once()

    async def worker(relay: OutboxRelay) -> None:
        async with outbox.queue.pinned():  # what OutboxRelay.run() does: one connection each
            while await relay.run_once():
                pass

    started = time.perf_counter()
    await asyncio.gather(*(worker(r) for r in relays))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, collector.ids


async def _run_raw(url: str, schema: str, n: int, batch: int) -> tuple[float, list[str]]:
    pool = await asyncpg.create_pool(
        _dsn(url), min_size=WORKERS, max_size=WORKERS, server_settings={"search_path": schema}
    )
    collector = _Collector()

    async def worker() -> None:
        async with pool.acquire() as conn:
            while True:
                now = datetime.now(UTC)
                token = uuid.uuid4().hex
                # One statement is atomic: autocommit, as a hand-written loop would.
                rows = await conn.fetch(CLAIM_SQL, now, batch, token, now + timedelta(seconds=60))
                if not rows:
                    return
                for row in sorted(rows, key=lambda r: r["id"]):
                    message = OutboxMessage(
                        message_id=row["message_id"],
                        event_type=row["event_type"],
                        payload=json.loads(row["payload"]),
                        metadata=json.loads(row["metadata"]),
                        created_at=row["created_at"],
                        retry_count=row["attempts"],
                        partition_key=row["partition_key"],
                    )
                    await collector.publish(message)
                await conn.execute(ACK_SQL, [r["id"] for r in rows], token, datetime.now(UTC))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return elapsed, collector.ids


async def _run_raw_psycopg(url: str, schema: str, n: int, batch: int) -> tuple[float, list[str]]:
    """``_run_raw`` on psycopg: the same statements, decoding and autocommit per statement."""
    conns = [await connect_psycopg(url, schema) for _ in range(WORKERS)]
    collector = _Collector()

    async def worker(conn: Any) -> None:
        while True:
            now = datetime.now(UTC)
            token = uuid.uuid4().hex
            cur = await conn.execute(
                _PG_CLAIM.sql, _PG_CLAIM.args(now, batch, token, now + timedelta(seconds=60))
            )
            rows = await cur.fetchall()
            if not rows:
                return
            col = {d.name: i for i, d in enumerate(cur.description)}
            for row in sorted(rows, key=lambda r: r[col["id"]]):
                message = OutboxMessage(
                    message_id=row[col["message_id"]],
                    event_type=row[col["event_type"]],
                    payload=json.loads(row[col["payload"]]),
                    metadata=json.loads(row[col["metadata"]]),
                    created_at=row[col["created_at"]],
                    retry_count=row[col["attempts"]],
                    partition_key=row[col["partition_key"]],
                )
                await collector.publish(message)
            ids = [r[col["id"]] for r in rows]
            await conn.execute(_PG_ACK.sql, _PG_ACK.args(ids, token, datetime.now(UTC)))

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return elapsed, collector.ids


async def run(
    url: str = PG_URL, *, messages: int = 20_000, messages_batch1: int = 4_000, rounds: int = 2
) -> list[dict[str, Any]]:
    """Run both sides for batch 1 and 50; returns one result row per batch size."""
    schema, admin = await _prepare(url)
    results: list[dict[str, Any]] = []
    try:
        for batch, n in ((1, messages_batch1), (50, messages)):
            best: dict[str, float] = {"ours": float("inf"), "raw": float("inf")}
            for _ in range(rounds):
                # Alternate the order so neither side always runs on a warmer cache.
                for side in ("raw", "ours") if _ % 2 else ("ours", "raw"):
                    await _fill(admin, n)
                    runner = _run_ours if side == "ours" else _run_raw
                    elapsed, ids = await runner(url, schema, n, batch)
                    if len(ids) != n or len(set(ids)) != n:
                        raise AssertionError(
                            f"{side} batch {batch}: {len(ids)} processed, "
                            f"{len(ids) - len(set(ids))} duplicates, expected {n}"
                        )
                    best[side] = min(best[side], elapsed)
            results.append(
                {
                    "benchmark": "outbox claim+publish+ack",
                    "workers": WORKERS,
                    "batch": batch,
                    "messages": n,
                    "ours_msgs_per_s": round(n / best["ours"]),
                    "raw_msgs_per_s": round(n / best["raw"]),
                    "ratio": round(best["raw"] / best["ours"], 3),
                    "duplicates": 0,
                }
            )
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    return results


async def _prepare(url: str) -> tuple[str, asyncpg.Connection]:
    """A throw-away schema holding an ``outbox_messages`` table, and an admin connection."""
    schema = f"bench_queue_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_dsn(url))
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    await admin.execute(f'SET search_path = "{schema}"')
    engine = create_engine(url, connect_args={"server_settings": {"search_path": schema}})
    async with engine.begin() as conn:
        await conn.run_sync(outbox_table.create)
    await engine.dispose()
    return schema, admin


try:
    from benchmarks.harness import Context, Variant, workload
except ImportError:  # pragma: no cover - the harness is optional for the standalone run
    workload = None  # type: ignore[assignment]

if workload is not None:

    async def _variants(ctx: Context, batch: int, n: int) -> list[Variant]:
        schema, admin = await _prepare(ctx.pg_url)

        async def drop() -> None:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()

        ctx.cleanup.append(drop)

        def side(runner: Any, name: str, url: str = ctx.pg_url) -> Any:
            async def run_once() -> float:
                await _fill(admin, n)
                elapsed, ids = await runner(url, schema, n, batch)
                if len(ids) != n or len(set(ids)) != n:
                    raise AssertionError(f"{name}: {len(ids)} processed, expected {n} unique")
                return float(n / elapsed)

            return run_once

        variants = [
            Variant("ours (OutboxRelay)", side(_run_ours, "ours")),
            Variant("raw asyncpg SKIP LOCKED", side(_run_raw, "raw"), baseline=True),
        ]
        url = psycopg_url(ctx.pg_url)
        if url is None:
            return variants
        return [
            *variants,
            Variant(OURS_PSYCOPG, side(_run_ours, OURS_PSYCOPG, url)),
            Variant(RAW_PSYCOPG, side(_run_raw_psycopg, RAW_PSYCOPG, url)),
        ]

    @workload(
        "queue.outbox_batch1",
        "outbox claim+publish+ack, 4 workers, batch 1, vs raw asyncpg (zero duplicates checked)",
        unit="msgs/s",
        compare=PSYCOPG_COMPARE,
    )
    async def outbox_batch1(ctx: Context) -> list[Variant]:
        return await _variants(ctx, 1, ctx.size(4_000))

    @workload(
        "queue.outbox_batch50",
        "outbox claim+publish+ack, 4 workers, batch 50, vs raw asyncpg (target >= 0.8x)",
        unit="msgs/s",
        compare=PSYCOPG_COMPARE,
    )
    async def outbox_batch50(ctx: Context) -> list[Variant]:
        return await _variants(ctx, 50, ctx.size(20_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=PG_URL)
    parser.add_argument("--messages", type=int, default=20_000, help="batch-50 run size")
    parser.add_argument("--messages-batch1", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = asyncio.run(
        run(
            args.url,
            messages=args.messages,
            messages_batch1=args.messages_batch1,
            rounds=args.rounds,
        )
    )
    for row in rows:
        print(
            f"batch {row['batch']:>3}: ours {row['ours_msgs_per_s']:>7} msg/s, "
            f"raw asyncpg {row['raw_msgs_per_s']:>7} msg/s, ratio {row['ratio']:.2f} "
            f"(target >= 0.8 at batch 50), duplicates {row['duplicates']}"
        )


if __name__ == "__main__":
    main()
