"""Spans of the library on the OpenTelemetry SDK (in-memory exporter), on SQLite and PostgreSQL.

One "request" span writes an event, an outbox message and a job in one unit of work; the
relay's publish span, the job's run span and the projection's handling span later continue
that request's trace from the ``traceparent`` stored with each.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from otel_sdk import Spans, tracer
from sqlalchemy import Numeric, String
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.conftest import pg_engine_for, schema_of

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_core.testing import ContractOrder
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork, create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.consumers.base import (
    InboxConsumer,
    Outcome,
    ReceivedMessage,
)
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
)
from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.observability import tracing
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher, encode_body, headers_of

pytestmark = pytest.mark.usefixtures("library_tables")


class ShipOrder(BackgroundJob):
    order_id: str = ""

    async def execute(self, ctx: JobContext) -> Any:
        return {"shipped": self.order_id}


async def _request(engine: AsyncEngine) -> ReadableSpan | Any:
    """The "request": an event, an outbox message and a job written in one unit of work."""
    store = SQLAlchemyEventStore(engine)
    outbox = SQLAlchemyOutboxStorage(engine)
    jobs = SQLAlchemyBackgroundJobRepository(ShipOrder, engine)
    with tracer.start_as_current_span("POST /orders") as request:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await store.append(
                StoredEvent(event_type="OrderPlaced", aggregate_id="o-1", payload={"n": 1}),
                uow=uow,
            )
            await outbox.save_messages([OutboxMessage(event_type="OrderPlaced")], uow=uow)
            await jobs.enqueue(ShipOrder(order_id="o-1"), uow=uow)
            await uow.commit()
    return request


def _trace_id_of(traceparent: str) -> int:
    return int(traceparent.split("-")[1], 16)


async def test_unit_of_work_spans_and_stored_trace_context(
    engine: AsyncEngine, dialect_name: str, spans: Spans
) -> None:
    request = await _request(engine)
    trace_id = request.get_span_context().trace_id
    request_id = request.get_span_context().span_id

    append = spans.one("append cqrs_events")
    save = spans.one("save outbox_messages")
    enqueue = spans.one("enqueue cqrs_background_jobs")
    commit = spans.one("commit")
    for span in (append, save, enqueue, commit):
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == request_id
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == dialect_name
    assert append.attributes is not None
    assert append.attributes["db.operation.name"] == "append"
    assert append.attributes["db.collection.name"] == "cqrs_events"
    assert commit.attributes is not None and commit.attributes["db.operation.name"] == "commit"
    assert "rollback" not in [s.name for s in spans.all()]  # the exit after a commit

    # The trace context is stored with the event, the outbox message and the job.
    (event,) = await SQLAlchemyEventStore(engine).get_events("o-1")
    assert _trace_id_of(event.metadata["traceparent"]) == trace_id
    (claimed,) = await SQLAlchemyOutboxStorage(engine).claim(10)
    assert _trace_id_of(claimed.message.metadata["traceparent"]) == trace_id
    (job,) = await SQLAlchemyBackgroundJobRepository(ShipOrder, engine).claim(10)
    assert _trace_id_of(job.claim["trace_context"]["traceparent"]) == trace_id


async def test_relay_publish_continues_the_trace_and_settle_links_it(
    engine: AsyncEngine, spans: Spans
) -> None:
    request = await _request(engine)
    trace_id = request.get_span_context().trace_id
    save = spans.one("save outbox_messages")
    publisher = InMemoryPublisher()
    relay = OutboxRelay(SQLAlchemyOutboxStorage(engine), publisher)
    assert await relay.run_once() == 1

    send = spans.one("send OrderPlaced")
    assert send.kind is SpanKind.PRODUCER
    assert send.context.trace_id == trace_id
    assert send.parent is not None and send.parent.span_id == save.context.span_id
    assert send.attributes is not None
    assert send.attributes["messaging.system"] == "memory"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.destination.name"] == "OrderPlaced"
    # The broker carries the publish span's context: a consumer continues from there.
    (published,) = publisher.published
    headers = headers_of(published)
    assert headers["traceparent"].split("-")[1:3] == [
        f"{trace_id:032x}",
        f"{send.context.span_id:016x}",
    ]
    settle = spans.one("settle outbox_messages")
    assert [link.context.trace_id for link in settle.links] == [trace_id]
    assert settle.context.trace_id != trace_id  # the relay's own trace, linked


async def test_job_run_continues_the_trace(engine: AsyncEngine, spans: Spans) -> None:
    request = await _request(engine)
    enqueue = spans.one("enqueue cqrs_background_jobs")
    worker = JobWorker(SQLAlchemyBackgroundJobRepository(ShipOrder, engine))
    assert await worker.run_until_idle() == 1

    run = spans.one(f"process {ShipOrder.job_type()}")
    assert run.kind is SpanKind.CONSUMER
    assert run.context.trace_id == request.get_span_context().trace_id
    assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
    assert run.attributes is not None
    assert run.attributes["messaging.destination.name"] == ShipOrder.job_type()
    settle = spans.one("settle cqrs_background_jobs")
    assert settle.context.trace_id == run.context.trace_id  # settled inside the run


async def test_projection_handling_continues_the_trace_and_the_batch_links_it(
    engine: AsyncEngine, spans: Spans
) -> None:
    request = await _request(engine)
    trace_id = request.get_span_context().trace_id
    append = spans.one("append cqrs_events")
    projection = Projection("orders", collections=["orders"])
    seen: list[str] = []

    @projection.on("OrderPlaced")
    async def placed(event: StoredEvent, ctx: ProjectionContext) -> None:
        seen.append(event.aggregate_id)

    runner = ProjectionRunner(
        projection,
        event_store=SQLAlchemyEventStore(engine),
        session_factory=async_sessionmaker(engine, expire_on_commit=False),
    )
    await runner.run_once(wait=True)
    assert seen == ["o-1"]

    handle = spans.one("handle OrderPlaced")
    assert handle.kind is SpanKind.CONSUMER
    assert handle.context.trace_id == trace_id
    assert handle.parent is not None and handle.parent.span_id == append.context.span_id
    batch = spans.one("process orders")
    assert [link.context.trace_id for link in batch.links] == [trace_id]
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 1


async def test_rollback_span_on_a_failed_unit_of_work(engine: AsyncEngine, spans: Spans) -> None:
    with pytest.raises(RuntimeError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await SQLAlchemyEventStore(engine).append(
                StoredEvent(event_type="E", aggregate_id="s"), uow=uow
            )
            raise RuntimeError("the handler failed")
    assert spans.one("rollback").attributes is not None
    assert await SQLAlchemyEventStore(engine).get_events("s") == []


async def test_tracing_off_by_engine_makes_no_span_and_stores_no_context(
    engine: AsyncEngine, spans: Spans
) -> None:
    schema = schema_of(engine)
    quiet = (
        pg_engine_for(schema, tracing=False)
        if schema is not None
        else create_engine(engine.url, tracing=False)
    )
    try:
        request = await _request(quiet)
        assert [s.name for s in spans.all()] == ["POST /orders"]
        assert request.get_span_context().is_valid
        (event,) = await SQLAlchemyEventStore(quiet).get_events("o-1")
        assert "traceparent" not in event.metadata
    finally:
        await quiet.dispose()


async def test_tracing_off_by_environment_makes_no_span(
    engine: AsyncEngine, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CQRS_TRACING", "0")
    tracing.reset()
    assert not tracing.tracing_enabled()
    await _request(engine)
    assert [s.name for s in spans.all()] == ["POST /orders"]
    relay = OutboxRelay(SQLAlchemyOutboxStorage(engine), InMemoryPublisher())
    assert await relay.run_once() == 1
    assert [s.name for s in spans.all()] == ["POST /orders"]


async def test_not_installed_is_the_same_as_off(engine: AsyncEngine, spans: Spans) -> None:
    tracing.reset(installed=False)
    assert tracing.tracer_for(engine) is None
    await _request(engine)
    assert [s.name for s in spans.all()] == ["POST /orders"]


class _Base(DeclarativeBase):
    pass


class _OrderModel(VersionMixin, _Base):
    __tablename__ = "traced_orders"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[str] = mapped_column(String(32))


async def test_repository_operations_are_spans(
    engine: AsyncEngine, dialect_name: str, spans: Spans
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
    repo = SQLAlchemyRepository(ContractOrder, _OrderModel)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    with tracer.start_as_current_span("PUT /orders/one") as request:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await repo.add(ContractOrder(id="one", customer_id="c", total=Decimal(1)), uow=uow)
            assert await repo.get("one", uow=uow) is not None
            await uow.commit()
    for name in ("save traced_orders", "get traced_orders", "commit"):
        span = spans.one(name)
        assert span.parent is not None
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == dialect_name
        if name == "save traced_orders":
            # the new aggregate is held for the batched INSERT, written before the get's
            # statement: in the request's trace, under the get that flushed it
            assert span.context.trace_id == request.get_span_context().trace_id
            assert span.parent.span_id == spans.one("get traced_orders").context.span_id
            assert span.attributes["db.operation.batch.size"] == 1
        else:
            assert span.parent.span_id == request.get_span_context().span_id
    assert spans.one("get traced_orders").attributes == {
        **spans.one("get traced_orders").attributes,
        "db.operation.name": "get",
        "db.collection.name": "traced_orders",
    }


async def test_a_consumer_continues_the_trace_the_broker_carried(
    engine: AsyncEngine, spans: Spans
) -> None:
    request = await _request(engine)
    publisher = InMemoryPublisher()
    await OutboxRelay(SQLAlchemyOutboxStorage(engine), publisher).run_once()
    send = spans.one("send OrderPlaced")
    (published,) = publisher.published
    received = ReceivedMessage(
        message_id=published.message_id,
        event_type=published.event_type,
        body=encode_body(published),
        headers=headers_of(published),
        source="orders",
    )
    handled: list[str] = []

    async def handler(message: ReceivedMessage, uow: SQLAlchemyUnitOfWork) -> None:
        handled.append(message.message_id)

    consumer = InboxConsumer(
        handler, consumer="billing", uow_factory=lambda: SQLAlchemyUnitOfWork(engine)
    )
    assert await consumer.process(received) is Outcome.HANDLED
    assert handled == [published.message_id]
    process = spans.one("process orders")
    assert process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == request.get_span_context().trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.consumer.group.name"] == "billing"
