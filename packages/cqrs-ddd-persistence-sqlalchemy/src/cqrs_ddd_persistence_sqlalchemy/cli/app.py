"""The root ``cqrs-ddd-sqla`` application: one sub-command group per component."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cqrs_ddd_persistence_sqlalchemy.cli import (
    dashboard,
    demo,
    health,
    jobs,
    outbox,
    projections,
    sagas,
    schema,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="cqrs-ddd-sqla",
    help="Operate cqrs-ddd-persistence-sqlalchemy beside your application: run the demo, "
    "create or check the schema, relay the outbox, run job workers and projections, recover "
    "sagas, check health. Every command takes --database-url (or CQRS_DATABASE_URL).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("demo")(demo.command)
app.add_typer(schema.app, name="schema")
app.add_typer(outbox.app, name="outbox")
app.add_typer(jobs.app, name="jobs")
app.add_typer(projections.app, name="projections")
app.add_typer(sagas.app, name="sagas")
app.command("health")(health.command)
app.command("dashboard")(dashboard.command)


def _version(value: bool) -> None:
    if value:
        from cqrs_ddd_persistence_sqlalchemy import __version__

        typer.echo(f"cqrs-ddd-sqla {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="CQRS_LOG_LEVEL", help="Python logging level.")
    ] = "WARNING",
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Console-script entry point."""
    app()
