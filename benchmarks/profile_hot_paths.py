"""Round trips and client CPU per operation on the hot paths: ours vs raw asyncpg.

``uv run python -m benchmarks.profile_hot_paths [--n 200] [--layers] [--cprofile PATH_NAME]``

For each path it counts socket writes to PostgreSQL per operation (with asyncpg every statement,
``BEGIN`` and ``COMMIT`` is one write followed by a wait for the reply, so writes = round trips)
and measures the client process's CPU time per operation (``time.process_time``, asyncpg's C
code included). ``--cprofile NAME`` prints the top functions of one path (ours, default engine);
``--layers`` times one single-row ``INSERT`` transaction through each layer of the stack (raw
asyncpg, SQLAlchemy session, connection, the asyncpg connection under SQLAlchemy, the store).
``--append-split`` splits a one-event append (the ``es.append_1`` shape) into what each layer
adds — the store, its in-statement NOTIFY, the pooled checkout, the statement itself on a
pinned connection — against raw asyncpg, interleaved in rounds of 50 so that the machine's
drift hits every row alike (medians of wall and client CPU per append).

This explains the benchmark ratios: a gap is either extra round trips (fixable by sending fewer
statements) or client CPU (Python work per operation, which on a 2-core machine shared with the
server is also taken from PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from asyncio import selector_events
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import bench_eventsourcing as es
from benchmarks import bench_jobs as jobs
from benchmarks import bench_repository as repo
from benchmarks._pg import BenchDb
from benchmarks.harness import Context

from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

_WRITES = [0]
_original_write = selector_events._SelectorSocketTransport.write


def _counting_write(self: Any, data: Any) -> None:
    _WRITES[0] += 1
    _original_write(self, data)


Path = Callable[[int], Awaitable[None]]


async def measure(fn: Path, n: int) -> tuple[float, float, float]:
    """(round trips, client CPU µs, wall µs) per operation over ``n`` operations."""
    await fn(max(1, n // 10))  # warm: connections, prepared statements, caches
    _WRITES[0] = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await fn(n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _WRITES[0] / n, cpu / n * 1e6, wall / n * 1e6


async def build_paths(ctx: Context) -> dict[str, dict[str, Path]]:
    import cqrs_ddd_persistence_sqlalchemy.advanced  # noqa: F401  (job tables)

    db = await BenchDb(ctx, pool_size=6).open(extra_metadata=repo.BenchBase.metadata)
    sa_ping = db.make_engine(pool_pre_ping=True)  # SQLAlchemy's pre-ping, the former default
    await es.seed_read_streams(db.pool, None, 1000)
    stores = {"ours": es.our_store(db.engine), "ours, SQLAlchemy pre-ping": es.our_store(sa_ping)}
    paths: dict[str, dict[str, Path]] = {}

    def appender(k: int) -> dict[str, Path]:
        out: dict[str, Path] = {}

        async def raw(n: int) -> None:
            async with db.pool.acquire() as conn:
                for _ in range(n):
                    await es.raw_append(conn, es._stream(), 0, k)

        out["raw asyncpg"] = raw
        for label, store in stores.items():

            def ours(n: int, store: Any = store) -> Awaitable[None]:
                async def go() -> None:
                    for _ in range(n):
                        await store.append(es.our_events(es._stream(), 0, k))

                return go()

            out[label] = ours
        return out

    paths["es append 1"] = appender(1)
    paths["es append 100"] = appender(100)

    async def raw_read(n: int) -> None:
        async with db.pool.acquire() as conn:
            for _ in range(n):
                await es.raw_read_typed(conn, "read-stream")

    paths["es read 1000 (typed)"] = {"raw asyncpg": raw_read}
    for label, store in stores.items():

        def reader(n: int, store: Any = store) -> Awaitable[None]:
            async def go() -> None:
                for _ in range(n):
                    await store.load_events("read-stream")

            return go()

        paths["es read 1000 (typed)"][label] = reader

    sides = {"ours": repo.Sides(db.engine), "ours, SQLAlchemy pre-ping": repo.Sides(sa_ping)}
    keys = await repo.seed(sides["ours"], 200)
    paths["repository get"] = {}
    paths["repository get"]["hand-written ORM"] = repo.operations(sides["ours"], keys)[
        "repository get (10 children)"
    ]["hand-written ORM"]
    for label, side in sides.items():
        paths["repository get"][label] = repo.operations(side, keys)[
            "repository get (10 children)"
        ]["ours"]

    job_repos = {
        "ours": SQLAlchemyBackgroundJobRepository(jobs.BenchJob, db.engine),
        "ours, SQLAlchemy pre-ping": SQLAlchemyBackgroundJobRepository(jobs.BenchJob, sa_ping),
    }
    await job_repos["ours"].enqueue_many(
        jobs.BenchJob(n=i, customer="c") for i in range(ctx.size(20000))
    )

    async def raw_job(n: int) -> None:
        # one worker, batch 1: claim + complete per job
        async with db.pool.acquire() as conn:
            for _ in range(n):
                await _raw_one_job(conn)

    paths["job claim+complete (batch 1)"] = {"raw asyncpg": raw_job}
    for label, jr in job_repos.items():

        def one_job(n: int, jr: Any = jr) -> Awaitable[None]:
            async def go() -> None:
                for _ in range(n):
                    for c in await jr.claim(1):
                        await jr.complete(c, {"n": c.job.n})

            return go()

        paths["job claim+complete (batch 1)"][label] = one_job
    return paths


async def _raw_one_job(conn: Any) -> None:
    import json
    import uuid
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    token = uuid.uuid4().hex
    rows = await conn.fetch(
        jobs._CLAIM, now, 1, token, now + timedelta(seconds=60), [jobs.BenchJob.job_type()]
    )
    for r in rows:
        job = jobs.BenchJob.model_validate({**json.loads(r["payload"]), "id": r["job_id"]})
        await conn.fetchrow(
            jobs._COMPLETE, r["id"], token, json.dumps({"value": {"n": job.n}}), now
        )


async def layers(ctx: Context, n: int) -> None:
    """Client CPU of one single-row INSERT transaction through each layer of the stack."""
    import json
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import text

    db = await BenchDb(ctx, pool_size=4).open()
    engine = db.make_engine(pool_pre_ping=False)
    factory = db.session_factory(engine)
    sql = es._RAW_INSERT_1
    stmt = text(
        "INSERT INTO cqrs_events (event_id, stream_id, version, event_type, aggregate_type, "
        "schema_version, payload, metadata, occurred_at) "
        "VALUES (:a, :b, :c, :d, :e, 1, CAST(:f AS jsonb), '{}'::jsonb, :g)"
    )

    def row() -> tuple[Any, ...]:
        payload = json.dumps(es.payload(1))
        return (
            str(uuid.uuid4()),
            es._stream(),
            1,
            "LineAdded",
            "Order",
            payload,
            datetime.now(UTC),
        )

    async def raw(k: int) -> None:
        async with db.pool.acquire() as conn:
            for _ in range(k):
                async with conn.transaction():
                    await conn.execute(sql, *row())

    async def session(k: int) -> None:
        for _ in range(k):
            async with factory() as s, s.begin():
                await (await s.connection()).execute(stmt, dict(zip("abcdefg", row(), strict=True)))

    async def connection(k: int) -> None:
        for _ in range(k):
            async with engine.begin() as conn:
                await conn.execute(stmt, dict(zip("abcdefg", row(), strict=True)))

    async def driver(k: int) -> None:
        for _ in range(k):
            async with engine.begin() as conn:
                raw_conn = await conn.get_raw_connection()
                await raw_conn.driver_connection.execute(sql, *row())  # type: ignore[union-attr]

    async def pooled(k: int) -> None:
        from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
        from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for

        execution = execution_for(engine)
        statement = kept(stmt)
        for _ in range(k):
            a, b, c, d, e, f, g = row()
            await execution.fetch(
                statement, {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g}
            )

    store = es.our_store(engine)

    async def append(k: int) -> None:
        for _ in range(k):
            await store.append(es.our_events(es._stream(), 0, 1))

    print(
        f"\n{'one 1-row INSERT transaction through':<42} {'round trips':>12} {'client CPU µs':>14}"
    )
    for label, fn in (
        ("raw asyncpg", raw),
        ("SQLAlchemy AsyncSession + text()", session),
        ("SQLAlchemy AsyncConnection + text()", connection),
        ("SQLAlchemy pool checkout + asyncpg execute", driver),
        ("execution seam, one statement (autocommit)", pooled),
        ("SQLAlchemyEventStore.append (autocommit)", append),
    ):
        rt, cpu, _ = await measure(fn, n)
        print(f"{label:<42} {rt:>12.1f} {cpu:>14.0f}")


async def append_split(ctx: Context, rounds: int) -> None:
    """Wall and client CPU per one-event append, layer by layer, interleaved (medians)."""
    import statistics

    from benchmarks import bench_event_store as be

    from cqrs_ddd_core import StreamState
    from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.event_log import _INSERTS
    from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import compiled_for
    from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for

    db = await be._open(ctx)
    store, quiet = db.store(), db.store(notify=False)
    log: Any = quiet.log_for()
    insert = _INSERTS[False]
    call = compiled_for(insert, db.engine.dialect)
    assert call is not None
    execution = execution_for(db.engine)
    per_round = 50

    def params() -> dict[str, Any]:
        stream = be._stream()
        batch = be._events(stream, 1)
        return log._params(stream, batch, (0, 0), [batch[0].event_id], notify=False)

    def appends(s: Any) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            for _ in range(per_round):
                await s.append(be._events(be._stream(), 1), expected_version=StreamState.NO_STREAM)

        return go

    async def pooled() -> None:
        for _ in range(per_round):
            await execution.fetch(insert, params())

    async def pinned() -> None:
        async with db.pool.acquire() as conn:
            for _ in range(per_round):
                await conn.fetch(call.sql, *call.args(params()))

    async def raw() -> None:
        async with db.pool.acquire() as conn:
            for _ in range(per_round):
                rows = be._raw_rows(be._stream(), 1)
                async with conn.transaction():
                    await conn.execute(be._RAW_INSERT, *rows[0])

    rows: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("store.append (library defaults)", appends(store)),
        ("store.append, notify=False", appends(quiet)),
        ("its statement, through the execution seam", pooled),
        ("its statement, pinned connection", pinned),
        ("raw asyncpg BEGIN/INSERT/COMMIT", raw),
    ]
    for _, fn in rows:
        for _ in range(4):
            await fn()  # warm: connections, prepared statements, generic plans
    wall: dict[str, list[float]] = {label: [] for label, _ in rows}
    cpu: dict[str, list[float]] = {label: [] for label, _ in rows}
    for r in range(rounds):
        for label, fn in rows[r % len(rows) :] + rows[: r % len(rows)]:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await fn()
            wall[label].append((time.perf_counter() - wall0) / per_round * 1e6)
            cpu[label].append((time.process_time() - cpu0) / per_round * 1e6)
    raw_wall = statistics.median(wall[rows[-1][0]])
    print(f"\n{'one-event append, split':<36} {'wall µs':>9} {'client CPU µs':>14} {'raw/this':>9}")
    for label, _ in rows:
        median = statistics.median(wall[label])
        print(
            f"{label:<36} {median:>9.0f} {statistics.median(cpu[label]):>14.0f}"
            f" {raw_wall / median:>9.2f}"
        )


async def main(
    n: int, cprofile: str | None, with_layers: bool = False, split_rounds: int = 0
) -> None:
    ctx = Context(runs=3)
    selector_events._SelectorSocketTransport.write = _counting_write  # type: ignore[method-assign]
    try:
        paths = await build_paths(ctx)
        print(
            f"{'path':<30} {'variant':<20} {'round trips':>12} {'client CPU µs':>14} {'wall µs':>9}"
        )
        for path, variants in paths.items():
            for label, fn in variants.items():
                rt, cpu, wall = await measure(fn, n)
                print(f"{path:<30} {label:<20} {rt:>12.1f} {cpu:>14.0f} {wall:>9.0f}")
        if with_layers:
            await layers(ctx, n)
        if split_rounds:
            selector_events._SelectorSocketTransport.write = _original_write  # type: ignore[method-assign]
            await append_split(ctx, split_rounds)
        if cprofile:
            fn = paths[cprofile]["ours"]
            profiler = cProfile.Profile()
            profiler.enable()
            await fn(n)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    finally:
        selector_events._SelectorSocketTransport.write = _original_write  # type: ignore[method-assign]
        while ctx.cleanup:
            await ctx.cleanup.pop()()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="operations per measurement")
    parser.add_argument("--cprofile", help="path name to profile (ours, default engine)")
    parser.add_argument(
        "--layers", action="store_true", help="also: one INSERT through each layer of the stack"
    )
    parser.add_argument(
        "--append-split",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also: a one-event append split layer by layer, ROUNDS interleaved rounds (40)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.n, args.cprofile, args.layers, args.append_split))
