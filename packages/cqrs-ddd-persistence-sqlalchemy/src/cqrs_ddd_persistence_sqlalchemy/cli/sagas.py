"""``cqrs-ddd-sqla sagas recover``: resume stalled sagas, compensate timed-out ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

__all__ = ["app", "load_orchestrators"]

app = typer.Typer(
    name="sagas",
    help="Sagas: recover the ones whose process died or whose wait timed out.",
    no_args_is_help=True,
)


def load_orchestrators(
    reference: str, session_factory: async_sessionmaker[AsyncSession]
) -> list[Any]:
    """The orchestrators named by ``reference``.

    It may name a ``SagaOrchestrator``, a list of them, or a callable taking the session factory
    and returning either (the usual form: the orchestrators' repositories need the database the
    command was given).
    """
    from cqrs_ddd_advanced_core.sagas import SagaOrchestrator

    obj = load_object(reference)
    if callable(obj) and not isinstance(obj, SagaOrchestrator):
        obj = obj(session_factory)
    found = [obj] if isinstance(obj, SagaOrchestrator) else obj
    if not isinstance(found, Iterable):
        raise CliError(f"{reference!r} gave a {type(obj).__name__}, not SagaOrchestrators")
    orchestrators = list(found)
    if not orchestrators or not all(isinstance(o, SagaOrchestrator) for o in orchestrators):
        raise CliError(f"{reference!r} gave no SagaOrchestrator")
    return orchestrators


@app.command("recover")
def recover(
    orchestrators: Annotated[
        str | None,
        typer.Option(
            "--orchestrators",
            "-o",
            help="'package.module:attribute': a SagaOrchestrator, a list of them, or "
            "factory(session_factory) returning them.",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sagas claimed at a time.")] = 10,
    lease_seconds: Annotated[
        float, typer.Option(min=1, help="How long a claimed saga is exclusive.")
    ] = 300.0,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between polls.")] = 5.0,
    once: Annotated[
        bool, typer.Option("--once", help="Recover what is due now, then exit.")
    ] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Resume sagas that stalled (their process died between steps) and compensate sagas whose
    event wait timed out — each by exactly one worker, however many run."""
    from cqrs_ddd_persistence_sqlalchemy.sagas import SagaRecoveryWorker, sagas_table

    async def body() -> int:
        if not orchestrators:
            raise CliError("name the sagas to recover: --orchestrators package.module:attribute")
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, [sagas_table.name])
            factory = async_sessionmaker(engine, expire_on_commit=False)
            worker = SagaRecoveryWorker(
                load_orchestrators(orchestrators, factory),
                engine,
                lease_seconds=lease_seconds,
                batch_size=batch_size,
                poll_interval=poll_interval,
            )
            if once:
                total = 0
                while processed := await worker.run_once():
                    total += processed
                return total
            err_console.print(f"recovering sagas in {describe_url(engine)}; Ctrl-C to stop")
            async with metrics_served(metrics_port, engine):
                await serve([worker])
            return 0

    console.print(f"recovered {run(body, service=True)} saga(s)")
