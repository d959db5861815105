"""Background jobs: claim + complete with 4 workers, ours vs a raw asyncpg SKIP LOCKED loop.

Before every run the ``cqrs_background_jobs`` table is refilled with N due jobs (untimed); then
4 concurrent workers drain it (timed, jobs/s). Batch = how many jobs one claim takes.

- ``ours``: ``SQLAlchemyBackgroundJobRepository.claim(batch)`` then ``complete(claimed,
  result)`` per job — the calls ``JobWorker`` makes, without its tasks and heartbeats;
- ``ours, repo.pinned()``: the same loop inside ``async with repo.pinned()`` (one connection
  held per worker, as the raw loop does);
- ``ours, JobWorker``: 4 ``JobWorker(concurrency=batch, prefetch=batch).run_until_idle()`` (a
  task per job, claims on the worker's held connection, as in production). The worker completes
  the jobs that finish together in one statement (``complete_many``), so at batch 50 it sends far
  fewer statements than the raw loop, which completes one job per statement: this variant
  is not a like-for-like comparison with the baseline;
- ``raw asyncpg``: the same claim statement (``WITH … FOR UPDATE SKIP LOCKED … UPDATE …
  RETURNING``), the payloads decoded, and one fenced ``UPDATE … WHERE id = $1 AND lease_token =
  $2`` per job (results differ per job), each statement in autocommit on a connection held by
  the worker.

Both also run on psycopg 3: ``ours (psycopg)`` (the ``ours`` loop with the repository on a
``postgresql+psycopg://`` engine) against ``raw psycopg`` (the raw loop's claim and complete
statements and ``json`` calls, on 4 held psycopg connections in autocommit), their ratio
reported; raw asyncpg stays the baseline. Without psycopg those two variants are skipped with
a note.

Every run checks that each job was completed exactly once (zero duplicates, nothing left).
Target (issue 9): ours >= 0.8x raw at batch 50.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from benchmarks._pg import OURS_PSYCOPG, PSYCOPG_COMPARE, RAW_PSYCOPG, BenchDb, PsycopgSql
from benchmarks.harness import Context, Variant, workload

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository

WORKERS = 4


class BenchJob(BackgroundJob):
    """A job with a few arguments; its work is a no-op (we measure the queue)."""

    n: int
    customer: str

    async def execute(self, ctx: JobContext) -> dict[str, int]:
        return {"n": self.n}


_CLAIM = """
WITH c AS MATERIALIZED (
    SELECT id FROM cqrs_background_jobs
    WHERE status = 'pending' AND available_at <= $1
      AND (locked_until IS NULL OR locked_until <= $1)
      AND job_type = ANY($5::varchar[])
    ORDER BY priority DESC, id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE cqrs_background_jobs AS t SET lease_token = $3, locked_until = $4
FROM c WHERE t.id = c.id
RETURNING t.*
"""
_COMPLETE = """
UPDATE cqrs_background_jobs
SET status = 'done', result = $3::jsonb, progress = 1.0, attempts = attempts + 1,
    finished_at = $4, updated_at = $4, lease_token = NULL, locked_until = NULL
WHERE id = $1 AND lease_token = $2
RETURNING cancel_requested, attempts
"""
_PG_CLAIM = PsycopgSql(_CLAIM)
_PG_COMPLETE = PsycopgSql(_COMPLETE)


async def fill(repo: SQLAlchemyBackgroundJobRepository[Any], pool: asyncpg.Pool, n: int) -> None:
    """N due jobs in a table in the same physical state before every sample: ``TRUNCATE``,
    not ``DELETE`` — each sample leaves ~2N dead row versions and their index entries behind,
    and a claim scanning past them (or autovacuum catching up mid-sample) slowed whichever
    variant ran late in a run by up to a quarter (measured: ``ours`` 3,523-4,532 jobs/s in two
    runs minutes apart, raw 4,697-4,847). ``ANALYZE`` gives every sample the same plans."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE cqrs_background_jobs")
    await repo.enqueue_many(BenchJob(n=i, customer=f"c-{i % 13}") for i in range(n))
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE cqrs_background_jobs")


async def run_ours(
    repo: SQLAlchemyBackgroundJobRepository[Any], batch: int, *, pinned: bool = False
) -> Counter[str]:
    done: Counter[str] = Counter()

    async def drain() -> None:
        while True:
            claimed = await repo.claim(batch)
            if not claimed:
                return
            for c in claimed:
                assert c.job is not None
                await repo.complete(c, {"n": c.job.n})
                done[c.id] += 1

    async def worker() -> None:
        if pinned:
            async with repo.pinned():  # one connection per worker, as the raw loop holds
                await drain()
        else:
            await drain()

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return done


async def run_job_worker(
    repo: SQLAlchemyBackgroundJobRepository[Any], batch: int, pool: asyncpg.Pool
) -> Counter[str]:
    workers = [
        JobWorker(
            repo, concurrency=batch, prefetch=batch, poll_interval=0.05, recover_interval=3600.0
        )
        for _ in range(WORKERS)
    ]
    await asyncio.gather(*(w.run_until_idle() for w in workers))
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT job_id, attempts FROM cqrs_background_jobs")
    return Counter({r["job_id"]: r["attempts"] for r in rows if r["attempts"]})


async def run_raw(pool: asyncpg.Pool, batch: int) -> Counter[str]:
    done: Counter[str] = Counter()
    types = [BenchJob.job_type()]

    async def worker() -> None:
        async with pool.acquire() as conn:
            while True:
                now = datetime.now(UTC)
                token = uuid.uuid4().hex
                rows = await conn.fetch(
                    _CLAIM, now, batch, token, now + timedelta(seconds=60), types
                )
                if not rows:
                    return
                rows = sorted(rows, key=lambda r: (-r["priority"], r["id"]))
                for r in rows:
                    job = BenchJob.model_validate(
                        {**json.loads(r["payload"]), "id": r["job_id"], "attempts": r["attempts"]}
                    )
                    result = json.dumps({"value": {"n": job.n}})
                    row = await conn.fetchrow(_COMPLETE, r["id"], token, result, datetime.now(UTC))
                    assert row is not None
                    done[r["job_id"]] += 1

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return done


async def run_raw_psycopg(conns: list[Any], batch: int) -> Counter[str]:
    """``run_raw`` on psycopg connections: the same statements, one per round trip."""
    done: Counter[str] = Counter()
    types = [BenchJob.job_type()]

    async def worker(conn: Any) -> None:
        while True:
            now = datetime.now(UTC)
            token = uuid.uuid4().hex
            cur = await conn.execute(
                _PG_CLAIM.sql, _PG_CLAIM.args(now, batch, token, now + timedelta(seconds=60), types)
            )
            rows = await cur.fetchall()
            if not rows:
                return
            col = {d.name: i for i, d in enumerate(cur.description)}
            rows = sorted(rows, key=lambda r: (-r[col["priority"]], r[col["id"]]))
            for r in rows:
                job = BenchJob.model_validate(
                    {
                        **json.loads(r[col["payload"]]),
                        "id": r[col["job_id"]],
                        "attempts": r[col["attempts"]],
                    }
                )
                result = json.dumps({"value": {"n": job.n}})
                args = _PG_COMPLETE.args(r[col["id"]], token, result, datetime.now(UTC))
                row = await (await conn.execute(_PG_COMPLETE.sql, args)).fetchone()
                assert row is not None
                done[r[col["job_id"]]] += 1

    await asyncio.gather(*(worker(c) for c in conns))
    return done


def _check(done: Counter[str], n: int, name: str) -> None:
    duplicates = sum(c - 1 for c in done.values() if c > 1)
    if duplicates or len(done) != n:
        raise AssertionError(
            f"{name}: {len(done)} of {n} jobs completed, {duplicates} duplicate completions"
        )


def _register(name: str, batch: int) -> None:
    @workload(
        name,
        f"job claim+complete, {WORKERS} workers, batch {batch}: ours vs raw SKIP LOCKED"
        + (" (target >= 0.8x)" if batch > 1 else ""),
        unit="jobs/s",
        compare=PSYCOPG_COMPARE,
    )
    async def build(ctx: Context) -> list[Variant]:
        import cqrs_ddd_persistence_sqlalchemy.advanced  # noqa: F401  (tables on the metadata)

        db = await BenchDb(ctx, pool_size=WORKERS * 2 + 2).open()
        repo: SQLAlchemyBackgroundJobRepository[Any] = SQLAlchemyBackgroundJobRepository(
            BenchJob, db.engine
        )
        repo_sa_ping: SQLAlchemyBackgroundJobRepository[Any] = SQLAlchemyBackgroundJobRepository(
            BenchJob,
            db.make_engine(pool_pre_ping=True),  # SQLAlchemy's, the former default
        )
        n = max(batch * WORKERS, ctx.size(2000 if batch > 1 else 400))

        def variant(label: str, drain: Any, *, baseline: bool = False) -> Variant:
            async def run() -> float:
                await fill(repo, db.pool, n)
                start = time.perf_counter()
                done = await drain()
                elapsed = time.perf_counter() - start
                _check(done, n, label)
                return n / elapsed

            async def warm() -> None:
                await run()

            return Variant(label, run, baseline=baseline, setup=warm)

        variants = [
            variant("raw asyncpg", lambda: run_raw(db.pool, batch), baseline=True),
            variant("ours", lambda: run_ours(repo, batch)),
            variant("ours, pool_pre_ping=True", lambda: run_ours(repo_sa_ping, batch)),
            variant("ours, repo.pinned()", lambda: run_ours(repo, batch, pinned=True)),
            variant("ours, JobWorker", lambda: run_job_worker(repo, batch, db.pool)),
        ]
        psycopg_engine = db.make_psycopg_engine()
        if psycopg_engine is None:
            return variants
        repo_psycopg: SQLAlchemyBackgroundJobRepository[Any] = SQLAlchemyBackgroundJobRepository(
            BenchJob, psycopg_engine
        )
        conns = await db.psycopg_connections(WORKERS)
        return [
            *variants,
            variant(OURS_PSYCOPG, lambda: run_ours(repo_psycopg, batch)),
            variant(RAW_PSYCOPG, lambda: run_raw_psycopg(conns, batch)),
        ]


_register("jobs.claim_complete_1", 1)
_register("jobs.claim_complete_50", 50)
