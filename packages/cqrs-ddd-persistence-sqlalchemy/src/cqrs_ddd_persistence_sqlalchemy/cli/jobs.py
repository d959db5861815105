"""``cqrs-ddd-sqla jobs worker|stats``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.cli._loader import load_object
from cqrs_ddd_persistence_sqlalchemy.cli._metrics import MetricsPort, metrics_served
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    CliError,
    DatabaseUrl,
    Pooler,
    Schema,
    console,
    describe_url,
    engine_scope,
    err_console,
    require_tables,
    run,
    serve,
)

__all__ = ["app", "stalled_jobs"]

app = typer.Typer(
    name="jobs",
    help="Background jobs: run a worker, show the queue.",
    no_args_is_help=True,
)


def _table_name() -> str:
    from cqrs_ddd_persistence_sqlalchemy.jobs import jobs_table

    return jobs_table.name


async def stalled_jobs(engine: AsyncEngine) -> tuple[int, float | None]:
    """Jobs whose worker stopped heartbeating (lease expired, not yet recovered), and the age in
    seconds of the oldest expired lease."""
    from cqrs_ddd_advanced_core.jobs import BackgroundJob
    from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

    return await SQLAlchemyBackgroundJobRepository(BackgroundJob, engine).stalled()


@app.command("stats")
def stats(database_url: DatabaseUrl = None, schema: Schema = None, pooler: Pooler = None) -> None:
    """Jobs per status, and stalled ones (their worker died; recovered after the lease)."""
    from cqrs_ddd_advanced_core.jobs import BackgroundJob
    from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

    async def body() -> tuple[str, dict[Any, int], int]:
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, [_table_name()])
            counts = await SQLAlchemyBackgroundJobRepository(
                BackgroundJob, engine
            ).count_by_status()
            stalled, _ = await stalled_jobs(engine)
            return describe_url(engine), counts, stalled

    where, counts, stalled = run(body)
    table = RichTable(title="jobs", caption=where, show_header=False, min_width=len(where))
    table.add_column("status")
    table.add_column("count", justify="right")
    for status, count in counts.items():
        table.add_row(str(getattr(status, "value", status)).lower(), str(count))
    table.add_row("stalled (lease expired)", str(stalled))
    console.print(table)


def _job_class(references: list[str]) -> type[Any]:
    from cqrs_ddd_advanced_core.jobs import BackgroundJob

    if not references:
        raise CliError("name the job classes to run: --job-class package.module:JobClass")
    classes = []
    for ref in references:
        cls = load_object(ref)
        if not (isinstance(cls, type) and issubclass(cls, BackgroundJob)):
            raise CliError(f"{ref!r} is not a BackgroundJob subclass")
        classes.append(cls)
    # One class: it and its subclasses; several: every BackgroundJob imported so far.
    return classes[0] if len(classes) == 1 else BackgroundJob


@app.command("worker")
def worker(
    job_class: Annotated[
        list[str],
        typer.Option(
            "--job-class",
            "-j",
            help="A BackgroundJob subclass to run, as 'package.module:Class' (repeatable).",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    handlers: Annotated[
        str | None,
        typer.Option(
            help="A mapping job type -> async handler(job, ctx), as 'package.module:attribute' "
            "(jobs without a handler run their execute()).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Handlers running at the same time (what the jobs can bear at once: "
            "connections, rate limits; CPU-bound jobs: more processes instead).",
        ),
    ] = 10,
    prefetch: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Jobs claimed ahead, at most (default 4 x concurrency; near concurrency for "
            "long jobs, so that several workers share them).",
            show_default=False,
        ),
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option(min=1, help="Lease of a claimed job (heartbeats extend it).")
    ] = 60.0,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between polls.")] = 0.5,
    once: Annotated[
        bool, typer.Option("--once", help="Run the jobs due now (and their retries), then exit.")
    ] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Run background jobs until SIGINT/SIGTERM (running jobs finish or are given back)."""
    from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository

    async def body() -> int:
        cls = _job_class(job_class)
        mapping: Mapping[Any, Any] | None = None
        if handlers is not None:
            mapping = load_object(handlers)
            if not isinstance(mapping, Mapping):
                raise CliError(f"{handlers!r} is not a mapping of job type to handler")
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, [_table_name()])
            repo = SQLAlchemyBackgroundJobRepository(cls, engine, lease_seconds=lease_seconds)
            job_worker = JobWorker(
                repo,
                handlers=mapping,
                concurrency=concurrency,
                prefetch=prefetch,
                poll_interval=poll_interval,
            )
            if once:
                return await job_worker.run_until_idle()
            err_console.print(
                f"running {cls.__name__} jobs from {describe_url(engine)} "
                f"(concurrency {job_worker.concurrency}, prefetch {job_worker.prefetch}); "
                "Ctrl-C to stop"
            )
            async with metrics_served(metrics_port, engine):
                await serve([job_worker])
            return job_worker.processed

    console.print(f"processed {run(body, service=True)} job(s)")
