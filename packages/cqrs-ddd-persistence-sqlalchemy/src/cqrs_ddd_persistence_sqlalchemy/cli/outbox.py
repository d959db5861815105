"""``cqrs-ddd-sqla outbox stats|dead-letters|requeue|relay``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    DatabaseUrl,
    Schema,
    console,
    describe_url,
    engine_scope,
    fail,
    require_tables,
    run,
)
from cqrs_ddd_persistence_sqlalchemy.cli._views import queue_stats_table

__all__ = ["app"]

app = typer.Typer(
    name="outbox",
    help="The transactional outbox: relay it to a broker, inspect it, requeue dead letters.",
    no_args_is_help=True,
)


@app.command("stats")
def stats(database_url: DatabaseUrl = None, schema: Schema = None) -> None:
    """Pending, leased, scheduled (backing off), published and dead messages; oldest lag."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table

    async def body() -> None:
        async with engine_scope(database_url, schema) as engine:
            await require_tables(engine, [outbox_table.name])
            result = await SQLAlchemyOutboxStorage(engine).stats()
            where = describe_url(engine)
        console.print(queue_stats_table(f"outbox in {where}", result, done_label="published"))

    run(body)


@app.command("dead-letters")
def dead_letters(
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
) -> None:
    """List the messages that exhausted their attempts, oldest first."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table

    async def body() -> None:
        async with engine_scope(database_url, schema) as engine:
            await require_tables(engine, [outbox_table.name])
            messages = await SQLAlchemyOutboxStorage(engine).dead_letters(limit)
        if not messages:
            console.print("no dead letters")
            return
        table = RichTable(title=f"{len(messages)} dead letter(s)")
        for column in ("message id", "event type", "attempts", "created", "last error"):
            table.add_column(column)
        for m in messages:
            table.add_row(
                m.message_id,
                m.event_type,
                str(m.retry_count),
                m.created_at.isoformat(timespec="seconds"),
                (m.error or "")[:120],
            )
        console.print(table)

    run(body)


@app.command("requeue")
def requeue(
    message_ids: Annotated[
        list[str] | None, typer.Argument(help="Message ids to requeue (see dead-letters).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
) -> None:
    """Bring dead-lettered messages back to pending (attempts start again from zero)."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table

    if not message_ids and not all_:
        fail("name the message ids to requeue, or pass --all")

    async def body() -> int:
        async with engine_scope(database_url, schema) as engine:
            await require_tables(engine, [outbox_table.name])
            return await SQLAlchemyOutboxStorage(engine).requeue(message_ids or None)

    count = run(body)
    console.print(f"requeued {count} message(s)")
