"""``cqrs-ddd-sqla dashboard``: the operations page, a small read-only web page.

One process serves one database: outbox (pending, oldest, dead letters and their last error),
jobs per status and type and the stalled ones, projections with their lag and last checkpoint,
sagas per status, the event store's horizon and (PostgreSQL) the session holding it back, and
charts of the last minutes sampled while it runs. The only action, requeueing dead letters, is
refused unless ``--allow-actions`` is given. See ``docs/dashboard.md``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    CliError,
    DatabaseUrl,
    Schema,
    describe_url,
    engine_scope,
    err_console,
    missing_tables,
    require_tables,
    run,
    serve,
)
from cqrs_ddd_persistence_sqlalchemy.cli.health import Thresholds

__all__ = ["command"]


def command(
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (the page has no login: keep it local).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
    allow_actions: Annotated[
        bool,
        typer.Option("--allow-actions", help="Offer and accept requeueing dead letters."),
    ] = False,
    refresh: Annotated[
        int, typer.Option(min=0, help="Seconds between page reloads (0: never).")
    ] = 10,
    sample_every: Annotated[
        float, typer.Option(min=0.05, help="Seconds between samples of the charts.")
    ] = 5.0,
    window: Annotated[
        float, typer.Option(min=1, help="Seconds of history the charts show.")
    ] = 900.0,
    dead_letters: Annotated[
        int, typer.Option(min=1, help="Dead letters listed (oldest first).")
    ] = 20,
    warn_after: Annotated[float, typer.Option(help="Lag in seconds shown as a warning.")] = 60.0,
    fail_after: Annotated[float, typer.Option(help="Lag in seconds shown as a failure.")] = 600.0,
) -> None:
    """Serve the operations page until SIGINT/SIGTERM."""
    from cqrs_ddd_persistence_sqlalchemy import metadata
    from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.app import Dashboard
    from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.history import History, Sampler
    from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.http import serve_http
    from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.page import PageOptions
    from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.snapshot import take_snapshot

    async def body() -> None:
        async with engine_scope(database_url, schema) as engine:
            names = sorted(metadata.tables)
            if len(await missing_tables(engine, names)) == len(names):
                await require_tables(engine, names)  # not one library table: a one-line error
            history = History(window_s=window, every_s=sample_every)
            take = partial(take_snapshot, engine, dead_letters=dead_letters)
            sampler = Sampler(take, history)
            await sampler.sample()  # the charts start with a point
            options = PageOptions(refresh_s=refresh, limits=Thresholds(warn_after, fail_after))
            dashboard = Dashboard(
                engine, take, history, allow_actions=allow_actions, options=options
            )
            try:
                server = await serve_http(dashboard.handle, host, port)
            except OSError as exc:  # port taken, address not local...
                raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
            try:
                bound = server.sockets[0].getsockname()[1]
                mode = "actions enabled" if allow_actions else "read-only"
                err_console.print(
                    f"dashboard on http://{host}:{bound}/ for {describe_url(engine)} ({mode}); "
                    "Ctrl-C to stop"
                )
                await serve([sampler])
            finally:
                server.close()
                await server.wait_closed()

    run(body, service=True)
