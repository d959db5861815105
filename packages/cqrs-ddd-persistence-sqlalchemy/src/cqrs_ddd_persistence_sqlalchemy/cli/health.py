"""``cqrs-ddd-sqla health``: lag and stall indicators of every component, one table.

Checks: the schema matches the installed library; the event store's commit-safe horizon (events
held back from subscribers by an old open transaction); the outbox's oldest pending message and
dead letters; projection lag behind the head of the log; stalled (lease-expired) and dead jobs.
Exit code 0 when every check is ``ok`` or ``warn``, 1 when one is ``fail`` — usable as a probe.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich.table import Table as RichTable
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    DatabaseUrl,
    Pooler,
    Schema,
    console,
    describe_url,
    engine_scope,
    missing_tables,
    require_tables,
    run,
)
from cqrs_ddd_persistence_sqlalchemy.cli._views import format_seconds

__all__ = ["Check", "Thresholds", "collect", "command"]

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the health report."""

    component: str
    check: str
    status: str
    value: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Lag (seconds) above which a check warns, and above which it fails."""

    warn_s: float = 60.0
    fail_s: float = 600.0
    #: Projection name -> event types it handles (``-p``), for an exact projection lag.
    handled: Mapping[str, frozenset[str]] | None = None

    def grade(self, seconds: float | None) -> str:
        if seconds is None or seconds < self.warn_s:
            return OK
        return WARN if seconds < self.fail_s else FAIL


ProbeFn = Callable[[AsyncEngine, Thresholds], Awaitable[list[Check]]]


@dataclass(frozen=True, slots=True)
class Probe:
    """A health probe and the library tables it reads."""

    component: str
    tables: tuple[str, ...]
    run: ProbeFn


async def _schema(engine: AsyncEngine, limits: Thresholds) -> list[Check]:
    from cqrs_ddd_persistence_sqlalchemy import metadata
    from cqrs_ddd_persistence_sqlalchemy.cli.schema import schema_differences

    async with engine.connect() as conn:
        problems = await conn.run_sync(schema_differences, metadata)
    value = (
        f"{len(metadata.tables)} tables match"
        if not problems
        else f"{len(problems)} difference(s): run `cqrs-ddd-sqla schema check`"
    )
    return [Check("schema", "library tables", WARN if problems else OK, value)]


async def _event_store(engine: AsyncEngine, limits: Thresholds) -> list[Check]:
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

    status = await SQLAlchemyEventStore(engine).horizon_lag()
    age = status.oldest_xact_age_s
    held = f"{status.invisible_events} event(s) above the horizon"
    if age is not None:
        held += f", oldest open transaction {format_seconds(age)} (pid {status.oldest_pid})"
    return [Check("event store", "commit-safe horizon", limits.grade(age), held)]


async def _outbox(engine: AsyncEngine, limits: Thresholds) -> list[Check]:
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage

    stats = await SQLAlchemyOutboxStorage(engine).stats()
    return [
        Check(
            "outbox",
            "oldest pending message",
            limits.grade(stats.lag_seconds) if stats.oldest_due_at else OK,
            f"{format_seconds(stats.lag_seconds)} ({stats.pending} pending)",
        ),
        Check("outbox", "dead letters", WARN if stats.dead else OK, str(stats.dead)),
    ]


async def _projections(engine: AsyncEngine, limits: Thresholds) -> list[Check]:
    from cqrs_ddd_persistence_sqlalchemy.cli.projections import projection_lags

    checks = []
    for lag in await projection_lags(engine, limits.handled):
        if lag.exact:
            # Behind on its own events and not checkpointed for a while: stalled or stopped.
            status = limits.grade(lag.age_s) if lag.behind else OK
            value = f"{lag.behind} event(s) behind"
        else:
            # Without the projection's event types the count is an upper bound: report only.
            status = OK
            value = f"≤ {lag.behind} event(s) behind (pass -p for the exact lag)"
        value += f", last checkpoint {format_seconds(lag.age_s)} ago"
        checks.append(Check("projection", lag.projection, status, value))
    if not checks:
        checks.append(Check("projection", "checkpoints", OK, "no projection has run yet"))
    return checks


async def _jobs(engine: AsyncEngine, limits: Thresholds) -> list[Check]:
    from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobStatus
    from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

    jobs = SQLAlchemyBackgroundJobRepository(BackgroundJob, engine)
    stalled, age = await jobs.stalled()
    counts = await jobs.count_by_status()
    dead = counts.get(JobStatus.DEAD, 0)
    value = f"{stalled} (oldest lease expired {format_seconds(age)} ago)" if stalled else "0"
    return [
        Check("jobs", "stalled (worker died)", limits.grade(age) if stalled else OK, value),
        Check("jobs", "dead", WARN if dead else OK, str(dead)),
    ]


PROBES: list[Probe] = [
    Probe("schema", (), _schema),
    Probe("event store", ("cqrs_events",), _event_store),
    Probe("outbox", ("outbox_messages",), _outbox),
    Probe("projection", ("cqrs_events", "projection_positions", "cqrs_leases"), _projections),
    Probe("jobs", ("cqrs_background_jobs",), _jobs),
]


async def collect(engine: AsyncEngine, limits: Thresholds) -> list[Check]:
    """Run every probe against ``engine``."""
    from cqrs_ddd_persistence_sqlalchemy import metadata

    missing = set(await missing_tables(engine, sorted(metadata.tables)))
    if missing == set(metadata.tables):
        await require_tables(engine, sorted(metadata.tables))  # none at all: a one-line error
    checks: list[Check] = []
    for probe in PROBES:
        absent = [t for t in probe.tables if t in missing]
        if absent:
            # A component the application does not use (or has not migrated yet).
            checks.append(Check(probe.component, "tables", WARN, f"missing: {', '.join(absent)}"))
            continue
        checks.extend(await probe.run(engine, limits))
    return checks


def command(
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    warn_after: Annotated[
        float, typer.Option(help="Lag in seconds above which a check warns.")
    ] = 60.0,
    fail_after: Annotated[
        float, typer.Option(help="Lag in seconds above which a check fails (exit code 1).")
    ] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    projection: Annotated[
        list[str],
        typer.Option(
            "--projection",
            "-p",
            help="Projection objects ('package.module:attribute', repeatable): their lag is "
            "counted on the event types they handle and graded.",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
) -> None:
    """Event-store horizon lag, oldest pending outbox message, projection lag, stalled jobs."""

    async def body() -> tuple[str, list[Check]]:
        from cqrs_ddd_persistence_sqlalchemy.cli.projections import (
            _load_projections,
            handled_types,
        )

        handled = handled_types(_load_projections(projection)) if projection else None
        limits = Thresholds(warn_after, fail_after, handled)
        async with engine_scope(database_url, schema, pooler) as engine:
            return describe_url(engine), await collect(engine, limits)

    where, checks = run(body)
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        style = {OK: "[green]ok[/]", WARN: "[yellow]warn[/]", FAIL: "[bold red]fail[/]"}
        table = RichTable(title="health", caption=where)
        for column in ("component", "check", "status", "value"):
            table.add_column(column)
        for c in checks:
            table.add_row(c.component, c.check, style[c.status], c.value)
        console.print(table)
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)
