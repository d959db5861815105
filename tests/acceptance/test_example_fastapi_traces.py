"""examples/fastapi_order_service traced: one HTTP request is one trace holding the library's
spans (the unit-of-work commit, the event append, the outbox write), and the relay's publish
span and a projection's handling span for its events continue it.

The request span stands for the application's HTTP instrumentation (e.g. OpenTelemetry's
FastAPI instrumentation): httpx's ASGI transport runs the app in the caller's context, so the
endpoint's unit of work runs inside it, as it would inside a server span.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.acceptance.conftest import ROOT

from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher, headers_of

sys.path.insert(0, str(ROOT / "examples" / "fastapi_order_service"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "observability"))
create_app: Callable[..., FastAPI] = importlib.import_module("order_service").create_app
otel_sdk = importlib.import_module("otel_sdk")
spans = otel_sdk.spans  # the fixture


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as c:
            yield c


async def test_one_request_is_one_trace_continued_by_the_relay_and_a_projection(
    client: httpx.AsyncClient, engine: AsyncEngine, spans: otel_sdk.Spans
) -> None:
    with otel_sdk.tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as request:
        placed = await client.post("/orders", json={"customer_id": "c-1", "total": "120.50"})
    assert placed.status_code == 201, placed.text
    trace_id = request.get_span_context().trace_id

    in_request = [s for s in spans.all() if s.context.trace_id == trace_id]
    names = {s.name for s in in_request}
    assert {"save example_orders", "append cqrs_events", "save outbox_messages", "commit"} <= names
    assert all(s.parent is not None for s in in_request if s.name != "POST /orders")
    append = spans.one("append cqrs_events")
    assert append.parent is not None
    assert append.parent.span_id == spans.one("commit").context.span_id  # the sinks at commit

    publisher = InMemoryPublisher()
    assert await OutboxRelay(SQLAlchemyOutboxStorage(engine), publisher).run_once() == 1
    send = spans.one("send example.OrderPlaced")
    assert send.context.trace_id == trace_id
    save = spans.one("save outbox_messages")
    assert send.parent is not None and send.parent.span_id == save.context.span_id
    headers = headers_of(publisher.published[0])
    assert headers["traceparent"].split("-")[1] == f"{trace_id:032x}"

    # A projection over the event store: its handling span continues the request's trace
    # from the append that stored the event; its batch span links to it.
    projection = Projection("order_totals", collections=["order_totals"])
    seen: list[str] = []

    @projection.on("example.OrderPlaced")
    async def on_placed(event: StoredEvent, ctx: ProjectionContext) -> None:
        seen.append(event.aggregate_id)

    runner = ProjectionRunner(
        projection,
        event_store=SQLAlchemyEventStore(engine),
        session_factory=async_sessionmaker(engine, expire_on_commit=False),
    )
    await runner.run_once(wait=True)
    assert seen == [placed.json()["id"]]
    handle = spans.one("handle example.OrderPlaced")
    assert handle.kind is SpanKind.CONSUMER
    assert handle.context.trace_id == trace_id
    assert handle.parent is not None and handle.parent.span_id == append.context.span_id
    batch = spans.one("process order_totals")
    assert [link.context.trace_id for link in batch.links] == [trace_id]
