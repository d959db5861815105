"""Background jobs against the job queues users would pick instead: PgQueuer and procrastinate.

All three on the same PostgreSQL server, in a scratch database (``bench`` unless
``CQRS_BENCH_PEERS_DB`` says otherwise; created if missing: the peers install their own schema
objects there, never in the test database). Ours runs in a throw-away schema of that database.
Variants are interleaved; the baseline is PgQueuer, and ``compare=`` adds ours / procrastinate.

- ``jobs.peers_enqueue_1``: N jobs enqueued one by one, each its own call outside any
  transaction of the caller (ours ``enqueue(job)``, PgQueuer ``Queries.enqueue(entrypoint,
  payload)``, procrastinate ``task.defer_async(n=…)``). From the same ints: each library builds
  its own payload (ours validates a pydantic job model; ``PgQueuer, pydantic payload`` builds
  its bytes from a pydantic model too, for the ratio with validation on both sides).
- ``jobs.peers_enqueue_batch``: one batch of N jobs in one call (ours ``enqueue_many``,
  PgQueuer ``enqueue`` with lists, procrastinate ``batch_defer_async``); a sample times 5 such
  calls, each into empty tables.
- ``jobs.peers_e2e_1proc`` / ``jobs.peers_e2e_4proc``: 5,000 no-op jobs drained by 1 or 4
  worker processes (``job_peers_worker.py``), each library's "until empty" mode, at its own
  defaults and at a matched in-flight cap of 20 (ours ``concurrency=prefetch=20``, PgQueuer
  ``batch_size=10, max_concurrent_tasks=20``, procrastinate ``concurrency=20``). The clock
  starts once every process is ready (interpreter start-up is not measured) and stops when the
  last one has drained the queue. Every sample checks that each job ran exactly once (the
  handlers report what they ran).

The peer versions are printed with the environment (``harness.environment``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
from benchmarks._pg import BenchDb, dsn_of
from benchmarks.harness import Context, Variant, workload
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

ENTRYPOINT = "bench_noop"
WORKER = Path(__file__).resolve().parent / "job_peers_worker.py"
CAP = 20
#: Batch calls timed per sample of ``jobs.peers_enqueue_batch``.
BATCH_CALLS = 5
#: PgQueuer with its payload built by a pydantic model, as ours validates the job's.
VALIDATED = "PgQueuer, pydantic payload"


class NoopPayload(BaseModel):
    """PgQueuer's payload validated as ours is (``PgQueuer, pydantic payload``)."""

    n: int


class NoopJob(BackgroundJob):
    """The benchmark's job: one argument, no work."""

    __job_type__ = ENTRYPOINT
    n: int

    async def execute(self, ctx: JobContext) -> None:
        return None


def peers_url(url: str) -> str:
    return (
        make_url(url)
        .set(database=os.environ.get("CQRS_BENCH_PEERS_DB", "bench"))
        .render_as_string(hide_password=False)
    )


class Peers:
    """The scratch database with the three queues installed, emptied between samples."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.url = peers_url(ctx.pg_url)
        self.db: BenchDb
        self.repo: Any
        self.conn: asyncpg.Connection
        self.pgq: Any
        self.app: Any
        self.task: Any
        self.available = True

    async def open(self) -> Peers:
        try:
            import pgqueuer  # noqa: F401
            import procrastinate  # noqa: F401
        except ImportError as exc:
            print(f"  skipped: {exc.name} not installed (uv sync --group bench)", flush=True)
            self.available = False
            return self
        admin = await asyncpg.connect(dsn_of(self.ctx.pg_url))
        try:
            name = make_url(self.url).database
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.db = await BenchDb(dataclasses.replace(self.ctx, pg_url=self.url)).open()
        self.repo = SQLAlchemyBackgroundJobRepository(NoopJob, self.db.engine)
        from pgqueuer import AsyncpgDriver, Queries
        from procrastinate import App, PsycopgConnector

        self.conn = await asyncpg.connect(dsn_of(self.url))
        self.pgq = Queries(AsyncpgDriver(self.conn))
        if not await self.pgq.has_table("pgqueuer"):
            await self.pgq.install()
        self.app = App(connector=PsycopgConnector(conninfo=dsn_of(self.url)))

        @self.app.task(name=ENTRYPOINT)
        async def noop(n: int) -> None:
            return None

        self.task = noop
        await self.app.open_async()
        exists = await self.conn.fetchval("SELECT to_regclass('public.procrastinate_jobs')")
        if exists is None:
            await self.app.schema_manager.apply_schema_async()
        self.ctx.cleanup.append(self.close)
        return self

    async def close(self) -> None:
        await self.app.close_async()
        await self.conn.close()

    async def empty(self) -> None:
        """Every queue empty, its tables truncated (same physical state for every sample)."""
        await self.db.pool.execute("TRUNCATE cqrs_background_jobs")
        await self.conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
        await self.conn.execute("TRUNCATE procrastinate_jobs CASCADE")

    async def fill(self, lib: str, n: int) -> None:
        await self.empty()
        if lib == "ours":
            await self.repo.enqueue_many(NoopJob(n=i) for i in range(n))
        elif lib == "pgqueuer":
            await self.pgq.enqueue([ENTRYPOINT] * n, [str(i).encode() for i in range(n)], [0] * n)
        else:
            await self.task.batch_defer_async(*({"n": i} for i in range(n)))
        await self.conn.execute("ANALYZE")


# -- enqueue ----------------------------------------------------------------------------------
def _enqueue_variants(peers: Peers, n: int, *, batch: bool) -> list[Variant]:
    repo, pgq, task = peers.repo, peers.pgq, peers.task

    async def ours() -> None:
        if batch:
            await repo.enqueue_many(NoopJob(n=i) for i in range(n))
        else:
            for i in range(n):
                await repo.enqueue(NoopJob(n=i))

    async def pgqueuer() -> None:
        if batch:
            await pgq.enqueue([ENTRYPOINT] * n, [str(i).encode() for i in range(n)], [0] * n)
        else:
            for i in range(n):
                await pgq.enqueue(ENTRYPOINT, str(i).encode())

    async def pgqueuer_validated() -> None:
        if batch:
            payloads = [NoopPayload(n=i).model_dump_json().encode() for i in range(n)]
            await pgq.enqueue([ENTRYPOINT] * n, payloads, [0] * n)
        else:
            for i in range(n):
                await pgq.enqueue(ENTRYPOINT, NoopPayload(n=i).model_dump_json().encode())

    async def procrastinate() -> None:
        if batch:
            await task.batch_defer_async(*({"n": i} for i in range(n)))
        else:
            for i in range(n):
                await task.defer_async(n=i)

    # A batch call lasts a few tens of milliseconds: a sample times several (fresh tables
    # each), so that one hiccup of a shared machine does not decide it.
    calls = BATCH_CALLS if batch else 1

    def variant(name: str, body: Any, *, baseline: bool = False) -> Variant:
        async def run() -> float:
            elapsed = 0.0
            for _ in range(calls):
                await peers.empty()
                start = time.perf_counter()
                await body()
                elapsed += time.perf_counter() - start
            return n * calls / elapsed

        return Variant(name, run, baseline=baseline, setup=run)

    return [
        variant("PgQueuer", pgqueuer, baseline=True),
        variant("ours", ours),
        variant("procrastinate", procrastinate),
        variant(VALIDATED, pgqueuer_validated),
    ]


@workload(
    "jobs.peers_enqueue_1",
    "enqueue one job per call: ours vs PgQueuer vs procrastinate (target >= 1.0x PgQueuer)",
    unit="jobs/s",
    compare=(("ours", "procrastinate"), ("ours", VALIDATED)),
)
async def enqueue_one(ctx: Context) -> list[Variant]:
    peers = await Peers(ctx).open()
    return _enqueue_variants(peers, ctx.size(300), batch=False) if peers.available else []


@workload(
    "jobs.peers_enqueue_batch",
    "enqueue 1,000 jobs in one call: ours enqueue_many vs PgQueuer vs procrastinate "
    "(target >= 1.0x PgQueuer)",
    unit="jobs/s",
    compare=(("ours", "procrastinate"), ("ours", VALIDATED)),
)
async def enqueue_batch(ctx: Context) -> list[Variant]:
    peers = await Peers(ctx).open()
    return _enqueue_variants(peers, ctx.size(1000), batch=True) if peers.available else []


# -- end to end -------------------------------------------------------------------------------
async def _drain(peers: Peers, lib: str, processes: int, n: int, cap: int | None) -> float:
    """One sample: fill, start the processes, time the drain, check exactly-once."""
    await peers.fill(lib, n)
    args = [sys.executable, str(WORKER), lib, peers.url, peers.db.schema]
    if cap is not None:
        args += ["--concurrency", str(cap), "--prefetch", str(cap)]
    procs = [
        await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise AssertionError(f"{lib} worker did not start: {line!r}")

        async def output(proc: asyncio.subprocess.Process) -> list[bytes]:
            assert proc.stdout is not None
            return (await proc.stdout.read()).split()

        readers = [asyncio.create_task(output(p)) for p in procs]
        start = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.wait_for(asyncio.gather(*readers), 600)
        elapsed = time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    ran: Counter[int] = Counter()
    for lines in outputs:
        if not lines or lines[-1] != b"done":
            raise AssertionError(f"{lib}: a worker process did not finish")
        ran.update(int(x) for x in lines[:-1])
    duplicates = sum(c - 1 for c in ran.values() if c > 1)
    if duplicates or len(ran) != n:
        raise AssertionError(f"{lib}: {len(ran)} of {n} jobs ran, {duplicates} duplicate runs")
    return n / elapsed


def _register_e2e(processes: int) -> None:
    name = f"jobs.peers_e2e_{processes}proc"
    defaults = ("ours (defaults)", "PgQueuer (defaults)", "procrastinate (defaults)")
    capped = (f"ours (cap {CAP})", f"PgQueuer (cap {CAP})", f"procrastinate (cap {CAP})")

    @workload(
        name,
        f"5,000 no-op jobs, {processes} worker process(es): each library at its defaults and at "
        f"{CAP} in flight (targets: ours >= 1.0x PgQueuer, >= 3x procrastinate, at defaults)",
        unit="jobs/s",
        compare=(
            (defaults[0], defaults[2]),
            (capped[0], capped[1]),
            (capped[0], capped[2]),
        ),
    )
    async def build(ctx: Context) -> list[Variant]:
        peers = await Peers(ctx).open()
        if not peers.available:
            return []
        n = ctx.size(5000)
        variants = []
        for label, lib, cap in (
            (defaults[1], "pgqueuer", None),
            (defaults[0], "ours", None),
            (defaults[2], "procrastinate", None),
            (capped[0], "ours", CAP),
            (capped[1], "pgqueuer", CAP),
            (capped[2], "procrastinate", CAP),
        ):

            async def run(lib: str = lib, cap: int | None = cap) -> float:
                return await _drain(peers, lib, processes, n, cap)

            variants.append(Variant(label, run, baseline=label == defaults[1]))
        return variants


_register_e2e(1)
_register_e2e(4)
