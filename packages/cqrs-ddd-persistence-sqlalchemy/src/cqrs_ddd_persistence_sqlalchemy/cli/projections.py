"""``cqrs-ddd-sqla projections run|rebuild|status``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable
from sqlalchemy import func, select
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
from cqrs_ddd_persistence_sqlalchemy.cli._views import format_seconds

__all__ = ["Lag", "app", "handled_types", "projection_lags"]

app = typer.Typer(
    name="projections",
    help="Read models built from the event log: follow it, rebuild them, show their lag.",
    no_args_is_help=True,
)

ProjectionRefs = Annotated[
    list[str],
    typer.Option(
        "--projection",
        "-p",
        help="A Projection object, as 'package.module:attribute' (repeatable).",
        show_default=False,
    ),
]


def _tables() -> list[str]:
    from cqrs_ddd_persistence_sqlalchemy.core import events_table
    from cqrs_ddd_persistence_sqlalchemy.tables.projections import (
        projection_positions_table,
    )

    return [events_table.name, projection_positions_table.name]


def _runner_tables() -> list[str]:
    """What running a projection needs: the log, the checkpoints and the leases."""
    from cqrs_ddd_persistence_sqlalchemy.tables.leases import leases_table

    return [*_tables(), leases_table.name]


LeaseDuration = Annotated[
    float,
    typer.Option(
        min=0.1,
        help="Seconds a runner's lease on its projection lasts after its last renewal: how "
        "long a runner that died keeps the others waiting.",
    ),
]
LeaseRenew = Annotated[
    float | None,
    typer.Option(
        min=0.01,
        help="Seconds between lease renewals while caught up (default: a third of "
        "--lease-duration; every batch renews it too).",
        show_default=False,
    ),
]


def _load_projections(refs: list[str]) -> list[Any]:
    from cqrs_ddd_advanced_core.projections import Projection

    if not refs:
        raise CliError("name at least one projection: --projection package.module:attribute")
    found = []
    for ref in refs:
        obj = load_object(ref)
        if not isinstance(obj, Projection):
            raise CliError(f"{ref!r} is a {type(obj).__name__}, not a Projection")
        found.append(obj)
    return found


def _runners(
    engine: AsyncEngine,
    projections: list[Any],
    batch_size: int,
    lease_duration: float = 15.0,
    lease_renew: float | None = None,
) -> list[Any]:
    from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

    store = SQLAlchemyEventStore(engine)
    return [
        ProjectionRunner(
            p,
            engine,
            event_store=store,
            batch_size=batch_size,
            lease_duration=lease_duration,
            lease_renew_interval=lease_renew,
        )
        for p in projections
    ]


async def _head(engine: AsyncEngine) -> tuple[int, int]:
    """``(max position, number of events)`` of the event log."""
    from cqrs_ddd_persistence_sqlalchemy.core import events_table as t

    async with engine.connect() as conn:
        row = (await conn.execute(select(func.max(t.c.position), func.count()))).one()
    return int(row[0] or 0), int(row[1])


@dataclass(frozen=True, slots=True)
class Lag:
    """Where one projection stands.

    ``behind`` counts the events after its checkpoint: of the event types it handles when
    ``exact`` (the projection was loaded), else of every type — an upper bound, since a
    projection's checkpoint only moves with the events it handles.
    """

    projection: str
    behind: int
    exact: bool
    position: int | None
    age_s: float | None


async def projection_lags(
    engine: AsyncEngine, handled: Mapping[str, frozenset[str]] | None = None
) -> list[Lag]:
    """The lag of every projection with a checkpoint; ``handled`` maps a projection's name to
    the event types it handles (from its ``Projection`` object) for an exact count."""
    from datetime import UTC, datetime

    from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionPositionStore
    from cqrs_ddd_persistence_sqlalchemy.core import events_table as t

    handled = handled or {}
    checkpoints = await SQLAlchemyProjectionPositionStore(engine).get_all()
    now = datetime.now(UTC)
    lags = []
    async with engine.connect() as conn:
        for cp in checkpoints:
            query = select(func.count()).where(t.c.position > (cp.position or 0))
            types = handled.get(cp.projection)
            if types is not None:
                query = query.where(t.c.event_type.in_(sorted(types)))
            behind = int((await conn.execute(query)).scalar_one())
            age = (now - cp.updated_at).total_seconds() if cp.updated_at else None
            lags.append(Lag(cp.projection, behind, types is not None, cp.position, age))
    return lags


def handled_types(projections: list[Any]) -> dict[str, frozenset[str]]:
    """Projection name -> the event types its handlers take."""
    return {p.name: frozenset(p.handlers.event_types) for p in projections}


@app.command("status")
def status(
    projection: Annotated[
        list[str],
        typer.Option(
            "--projection",
            "-p",
            help="Projection objects ('package.module:attribute', repeatable) for an exact lag "
            "(only the event types they handle).",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
) -> None:
    """Every projection's checkpoint and how many events of the log it has not applied yet."""

    async def body() -> tuple[str, int, list[Lag]]:
        handled = handled_types(_load_projections(projection)) if projection else None
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, _tables())
            head, _ = await _head(engine)
            return describe_url(engine), head, await projection_lags(engine, handled)

    where, head, lags = run(body)
    if not lags:
        console.print(f"no projection has run yet in {where} (log head: position {head})")
        return
    table = RichTable(title=f"projections (log head: position {head})", caption=where)
    for column in ("projection", "position", "events behind", "last checkpoint"):
        table.add_column(column, justify="left" if column == "projection" else "right")
    for lag in lags:
        behind = str(lag.behind) if lag.exact else f"≤ {lag.behind}"
        table.add_row(
            lag.projection, str(lag.position or 0), behind, f"{format_seconds(lag.age_s)} ago"
        )
    console.print(table)
    if any(not lag.exact for lag in lags):
        console.print("≤: all event types counted; pass -p for the exact lag", style="dim")


@app.command("run")
def run_projections(
    projection: ProjectionRefs = [],  # noqa: B006 - typer reads the default, never mutates it
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 500,
    once: Annotated[bool, typer.Option("--once", help="Catch up with the log, then exit.")] = False,
    lease_duration: LeaseDuration = 15.0,
    lease_renew: LeaseRenew = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Follow the event log and keep the projections up to date (until SIGINT/SIGTERM).

    Several processes may run the same projections: one runner per projection is active at a
    time (it holds the projection's lease, a row of cqrs_leases), the others stand by. A runner
    that stops frees its projections at once; one that dies frees them when its leases expire
    (--lease-duration).
    """

    async def body() -> list[tuple[str, int]]:
        projections = _load_projections(projection)
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, _runner_tables())
            runners = _runners(engine, projections, batch_size, lease_duration, lease_renew)
            if once:
                return [(r.name, await r.run_once()) for r in runners]
            err_console.print(
                f"running {', '.join(r.name for r in runners)} on {describe_url(engine)}; "
                "Ctrl-C to stop"
            )
            async with metrics_served(metrics_port, engine):
                await serve(runners)
            return []

    for name, applied in run(body, service=True):
        console.print(f"{name}: applied {applied} event(s)")


@app.command("rebuild")
def rebuild(
    projection: ProjectionRefs = [],  # noqa: B006 - typer reads the default, never mutates it
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 1000,
    wait: Annotated[
        bool, typer.Option(help="Wait for a running runner to release the projection.")
    ] = False,
) -> None:
    """Empty the projections' collections and checkpoints, then replay the whole log.

    Shows a progress bar with the rate and the time remaining.
    """

    async def body() -> list[tuple[str, int, float]]:
        projections = _load_projections(projection)
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, _runner_tables())
            head, _ = await _head(engine)
            results = []
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} ev/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
            ) as bar:
                for runner in _runners(engine, projections, batch_size):
                    task = bar.add_task(runner.name, total=head or 1, rate="-")
                    started = time.monotonic()

                    def report(p: Any, task: Any = task) -> None:
                        done = head if p.caught_up else min(p.position or 0, head)
                        rate = p.events_processed / p.elapsed if p.elapsed > 0 else 0.0
                        bar.update(task, completed=done or 0, rate=f"{rate:,.0f}")

                    applied = await runner.rebuild(progress=report, wait=wait)
                    bar.update(task, completed=head or 1)
                    results.append((runner.name, applied, time.monotonic() - started))
            return results

    for name, applied, seconds in run(body, service=True):
        console.print(f"{name}: rebuilt from {applied} event(s) in {format_seconds(seconds)}")
