"""``cqrs-ddd-sqla outbox stats|dead-letters|requeue|relay``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

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
    fail,
    require_tables,
    run,
    serve,
)
from cqrs_ddd_persistence_sqlalchemy.cli._views import queue_stats_table

__all__ = ["app"]

app = typer.Typer(
    name="outbox",
    help="The transactional outbox: relay it to a broker, inspect it, requeue dead letters.",
    no_args_is_help=True,
)


@app.command("stats")
def stats(database_url: DatabaseUrl = None, schema: Schema = None, pooler: Pooler = None) -> None:
    """Pending, leased, scheduled (backing off), published and dead messages; oldest lag."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table

    async def body() -> None:
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, [outbox_table.name])
            result = await SQLAlchemyOutboxStorage(engine).stats()
            where = describe_url(engine)
        console.print(queue_stats_table("outbox", result, done_label="published", caption=where))

    run(body)


@app.command("dead-letters")
def dead_letters(
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
) -> None:
    """List the messages that exhausted their attempts, oldest first."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table

    async def body() -> None:
        async with engine_scope(database_url, schema, pooler) as engine:
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
    pooler: Pooler = None,
) -> None:
    """Bring dead-lettered messages back to pending (attempts start again from zero)."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table

    if not message_ids and not all_:
        fail("name the message ids to requeue, or pass --all")

    async def body() -> int:
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, [outbox_table.name])
            return await SQLAlchemyOutboxStorage(engine).requeue(message_ids or None)

    count = run(body)
    console.print(f"requeued {count} message(s)")


class PublisherKind(StrEnum):
    logging = "logging"
    rabbitmq = "rabbitmq"
    nats = "nats"
    redis = "redis"
    kafka = "kafka"


def make_publisher(kind: PublisherKind, broker_url: str | None, target: str | None) -> Any:
    """The publisher adapter for ``kind`` (broker client libraries are imported on demand)."""
    if kind is PublisherKind.logging:
        from cqrs_ddd_persistence_sqlalchemy.publishers import LoggingPublisher

        # Shown whatever --log-level says: printing the messages is this publisher's job.
        published = logging.getLogger("cqrs_ddd.outbox.published")
        published.setLevel(logging.INFO)
        return LoggingPublisher(published, level=logging.INFO)
    try:
        if kind is PublisherKind.rabbitmq:
            from cqrs_ddd_persistence_sqlalchemy.publishers.rabbitmq import RabbitMQPublisher

            kwargs: dict[str, Any] = {"exchange": target} if target else {}
            return RabbitMQPublisher(broker_url or "amqp://guest:guest@127.0.0.1:5672/", **kwargs)
        if kind is PublisherKind.nats:
            from cqrs_ddd_persistence_sqlalchemy.publishers.nats import NatsJetStreamPublisher

            return NatsJetStreamPublisher(
                broker_url or "nats://127.0.0.1:4222", stream=target, create_stream=bool(target)
            )
        if kind is PublisherKind.kafka:
            from cqrs_ddd_persistence_sqlalchemy.publishers.kafka import KafkaPublisher

            return KafkaPublisher(kafka_servers(broker_url), topic=target)
        from cqrs_ddd_persistence_sqlalchemy.publishers.redis import RedisStreamPublisher

        return RedisStreamPublisher(broker_url or "redis://127.0.0.1:6379/0", stream_name=target)
    except ImportError as exc:
        raise CliError(
            f"the {kind.value} publisher needs its client library: "
            f"pip install 'cqrs-ddd-persistence-sqlalchemy[{kind.value}]' ({exc})"
        ) from exc


def kafka_servers(broker_url: str | None) -> list[str]:
    """``HOST:PORT[,HOST:PORT...]`` (an optional ``kafka://`` prefix is dropped)."""
    url = broker_url or "127.0.0.1:9092"
    servers = [s.strip().removeprefix("kafka://") for s in url.split(",")]
    if not all(servers):
        raise CliError(f"--broker-url for kafka is HOST:PORT[,HOST:PORT...], got {url!r}")
    return servers


@app.command("relay")
def relay(
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    pooler: Pooler = None,
    publisher: Annotated[
        PublisherKind, typer.Option(help="Where to publish (logging prints each message).")
    ] = PublisherKind.logging,
    broker_url: Annotated[
        str | None,
        typer.Option(
            envvar="CQRS_BROKER_URL",
            help="Broker URL (amqp://, nats://, redis://; HOST:PORT[,HOST:PORT] for kafka).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="RabbitMQ exchange / NATS JetStream stream / Redis stream / Kafka topic "
            "(Kafka default: one topic per event type).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Messages claimed per statement.")] = 100,
    relays: Annotated[int, typer.Option(min=1, help="Concurrent relays in this process.")] = 1,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between polls.")] = 1.0,
    listen: Annotated[
        bool,
        typer.Option(help="Wake on LISTEN/NOTIFY (PostgreSQL; never with --pooler transaction)."),
    ] = True,
    ordered_by_key: Annotated[
        bool, typer.Option("--ordered-by-key", help="Publish each aggregate's messages in order.")
    ] = False,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before dead-lettering.")] = 10,
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is due now, then exit (cron-style).")
    ] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Publish the outbox to a broker until SIGINT/SIGTERM (or, with --once, until drained)."""
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, outbox_table
    from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay

    async def body() -> dict[str, int]:
        async with engine_scope(database_url, schema, pooler) as engine:
            await require_tables(engine, [outbox_table.name])
            storage = SQLAlchemyOutboxStorage(
                engine, ordered_by_key=ordered_by_key, max_attempts=max_attempts
            )
            pub = make_publisher(publisher, broker_url, target)
            async with contextlib.AsyncExitStack() as stack:
                if hasattr(pub, "__aenter__"):
                    await stack.enter_async_context(pub)
                workers = [
                    OutboxRelay(
                        storage,
                        pub,
                        batch_size=batch_size,
                        poll_interval=poll_interval,
                        listen=listen,
                        name=f"outbox-relay-{i}",
                    )
                    for i in range(relays)
                ]
                if once:
                    await asyncio.gather(*(_drain(w) for w in workers))
                else:
                    err_console.print(
                        f"relaying {describe_url(engine)} -> {publisher.value} "
                        f"({relays} relay(s)); Ctrl-C to stop"
                    )
                    async with metrics_served(metrics_port, engine):
                        await serve(workers)
        totals: dict[str, int] = {}
        for w in workers:
            for key in ("claimed", "published", "failed", "dead", "lost"):
                totals[key] = totals.get(key, 0) + int(getattr(w.metrics, key))
        return totals

    totals = run(body, service=True)
    console.print(", ".join(f"{k} {v}" for k, v in totals.items()))


async def _drain(relay: Any) -> None:
    while await relay.run_once():
        pass
