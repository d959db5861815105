"""``cqrs-ddd-sqla demo``: an order-fulfilment story through every component, with a summary.

By default it runs on an embedded SQLite file (``./cqrs-ddd-demo.db``, recreated each run); with
``--database-url postgresql+asyncpg://...`` it runs on PostgreSQL in its own schema
(``cqrs_ddd_demo`` unless ``--schema`` says otherwise), dropped and recreated each run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table as RichTable
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateSchema, DropSchema

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    CliError,
    DatabaseUrl,
    console,
    describe_url,
    normalize_url,
    open_engine,
    run,
)
from cqrs_ddd_persistence_sqlalchemy.dialects import support_for_url

__all__ = ["DEFAULT_URL", "command"]

DEFAULT_URL = "sqlite+aiosqlite:///./cqrs-ddd-demo.db"
DEFAULT_SCHEMA = "cqrs_ddd_demo"


def _fresh_sqlite(url: str) -> None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(database + suffix).unlink(missing_ok=True)


async def _fresh_schema(url: str, schema: str) -> None:
    if schema in {"public", "pg_catalog", "information_schema"}:
        raise CliError(f"the demo drops and recreates its schema; refusing to use {schema!r}")
    admin = open_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(DropSchema(schema, cascade=True, if_exists=True))
            await conn.execute(CreateSchema(schema))
    finally:
        await admin.dispose()


async def _create_tables(engine: AsyncEngine) -> None:
    from cqrs_ddd_persistence_sqlalchemy import metadata
    from cqrs_ddd_persistence_sqlalchemy.cli.demo.domain import DemoBase

    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(DemoBase.metadata.create_all)


@contextmanager
def _quiet_expected_failures() -> Iterator[None]:
    """The second saga and the first invoice fail on purpose; the demo tells that story itself,
    without the workers' warnings and tracebacks in the middle of it (levels restored after)."""
    loggers = [
        logging.getLogger("cqrs_ddd_advanced_core.sagas"),
        logging.getLogger("cqrs_ddd_persistence_sqlalchemy.jobs.worker"),
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def command(
    database_url: DatabaseUrl = None,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            envvar="CQRS_DATABASE_SCHEMA",
            help=f"PostgreSQL schema the demo recreates and works in [default: {DEFAULT_SCHEMA}].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the order-fulfilment demo end to end and print what each component did.

    Default database: ./cqrs-ddd-demo.db (SQLite, recreated each run).
    """
    from cqrs_ddd_persistence_sqlalchemy.cli.demo.scenario import STEPS, Demo, StepResult

    async def body() -> tuple[str, bool, list[tuple[StepResult, float]]]:
        url = normalize_url(database_url or DEFAULT_URL)
        is_pg = support_for_url(url).supports_schemas
        if is_pg:
            await _fresh_schema(url, schema or DEFAULT_SCHEMA)
        else:
            _fresh_sqlite(url)
        engine = open_engine(url, (schema or DEFAULT_SCHEMA) if is_pg else schema)
        results: list[tuple[StepResult, float]] = []
        try:
            await _create_tables(engine)
            demo = Demo(engine)
            for number, (_, step) in enumerate(STEPS, start=1):
                started = time.perf_counter()
                result = await step(demo)
                elapsed = time.perf_counter() - started
                results.append((result, elapsed))
                body_text = "\n".join(f"• {line}" for line in result.lines)
                console.print(
                    Panel(
                        body_text,
                        title=f"[bold]{number}. {result.title}[/]",
                        subtitle=f"{result.component} · {elapsed * 1000:.0f} ms",
                        title_align="left",
                        subtitle_align="right",
                        border_style="green",
                    )
                )
            return describe_url(engine), is_pg, results
        finally:
            await engine.dispose()

    with _quiet_expected_failures():
        where, is_pg, results = run(body)
    summary = RichTable(title=f"cqrs-ddd demo on {where}", title_style="bold")
    summary.add_column("#", justify="right")
    summary.add_column("step")
    summary.add_column("components")
    summary.add_column("result")
    for number, (result, elapsed) in enumerate(results, start=1):
        summary.add_row(
            str(number), result.title, result.component, f"[green]ok[/] ({elapsed * 1000:.0f} ms)"
        )
    console.print(summary)
    schema_hint = f" --schema {schema or DEFAULT_SCHEMA}" if is_pg else ""
    console.print(
        f"[bold green]All {len(results)} steps passed.[/] Inspect the result with:\n"
        f"  cqrs-ddd-sqla health -d {where}{schema_hint}\n"
        f"  cqrs-ddd-sqla projections status -d {where}{schema_hint}",
        soft_wrap=True,
    )
