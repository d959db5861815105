"""One worker process of ``bench_job_peers``: ours, PgQueuer or procrastinate, no-op jobs.

``python benchmarks/job_peers_worker.py LIB URL SCHEMA [--concurrency N] [--prefetch N]``

The process builds its worker, prints ``ready`` and waits for a line on stdin (the parent
starts the clock once every process is ready: interpreter start-up is not measured), then
drains the queue with the library's own "until empty" mode and prints the ``n`` argument of
every job its handler ran (one per line) and ``done``. The parent checks that the union has
every job once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENTRYPOINT = "bench_noop"


async def _go() -> None:
    """Say ready, then wait for the parent's go."""
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def run_ours(url: str, schema: str, concurrency: int | None, prefetch: int | None) -> None:
    from benchmarks.bench_job_peers import NoopJob

    from cqrs_ddd_persistence_sqlalchemy import create_engine
    from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository

    ran: list[int] = []

    async def handler(job: Any, ctx: Any) -> None:
        ran.append(job.n)

    engine = create_engine(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        repo: Any = SQLAlchemyBackgroundJobRepository(NoopJob, engine)
        options: dict[str, Any] = {}
        if concurrency is not None:
            options["concurrency"] = concurrency
        if prefetch is not None:
            options["prefetch"] = prefetch
        worker = JobWorker(repo, handlers={NoopJob: handler}, **options)
        await repo.stats()  # connect before the clock starts, as the peers do
        await _go()
        await worker.run_until_idle()
    finally:
        await engine.dispose()
    _report(ran)


async def run_pgqueuer(url: str, concurrency: int | None, prefetch: int | None) -> None:
    import asyncpg
    from benchmarks._pg import dsn_of
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    ran: list[int] = []
    conn = await asyncpg.connect(dsn_of(url))
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRYPOINT)
    async def noop(job: Any) -> None:
        ran.append(int(job.payload))

    options: dict[str, Any] = {}
    if prefetch is not None:  # matched caps: batch = half the cap (PgQueuer's own rule)
        options["batch_size"] = max(1, prefetch // 2)
        options["max_concurrent_tasks"] = max(2 * options["batch_size"], concurrency or 0)
    await _go()
    await qm.run(mode=QueueExecutionMode.drain, **options)
    if not conn.is_closed():
        await conn.close()
    _report(ran)


async def run_procrastinate(url: str, concurrency: int | None) -> None:
    import logging

    from benchmarks._pg import dsn_of
    from procrastinate import App, PsycopgConnector

    # Its warning that the app lives in ``__main__`` (this script): true, and harmless here.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)

    ran: list[int] = []
    app = App(connector=PsycopgConnector(conninfo=dsn_of(url)))

    @app.task(name=ENTRYPOINT)
    async def noop(n: int) -> None:
        ran.append(n)

    options: dict[str, Any] = {"wait": False, "install_signal_handlers": False}
    if concurrency is not None:
        options["concurrency"] = concurrency
    async with app.open_async():
        await _go()
        await app.run_worker_async(**options)
    _report(ran)


def _report(ran: list[int]) -> None:
    sys.stdout.write("".join(f"{n}\n" for n in ran) + "done\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("lib", choices=("ours", "pgqueuer", "procrastinate"))
    parser.add_argument("url")
    parser.add_argument("schema")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--prefetch", type=int)
    args = parser.parse_args()
    if args.lib == "ours":
        asyncio.run(run_ours(args.url, args.schema, args.concurrency, args.prefetch))
    elif args.lib == "pgqueuer":
        asyncio.run(run_pgqueuer(args.url, args.concurrency, args.prefetch))
    else:
        asyncio.run(run_procrastinate(args.url, args.concurrency))


if __name__ == "__main__":
    main()
