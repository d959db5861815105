"""Every documented metric reaches the Prometheus exporter ``--metrics-port`` serves
(OpenTelemetry's ``PrometheusMetricReader``), under the name docs/observability.md gives it,
once the library has done the work it measures on a real database (SQLite and PostgreSQL).

The reader has a registry of its own and its provider is handed to the library for this test
only (the process's global providers stay untouched).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import pg_engine_for, schema_of

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_advanced_core.sagas import saga_step
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.errors import LeaseLostError, LockTimeoutError, WrongExpectedVersionError
from cqrs_ddd_core.ports.event_store import StoredEvent, StreamState
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork, create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner, SQLAlchemySagaRepository
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.leases import Lease
from cqrs_ddd_persistence_sqlalchemy.observability import METRICS
from cqrs_ddd_persistence_sqlalchemy.observability import metrics as library_metrics
from cqrs_ddd_persistence_sqlalchemy.observability.gauges import DatabaseGauges
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher

pytestmark = pytest.mark.usefixtures("library_tables")


class Invoice(BackgroundJob):
    async def execute(self, ctx: JobContext) -> Any:
        return None


class Checkout(SagaState):
    @saga_step()
    async def reserve(self) -> None:
        pass


@pytest.fixture
async def registry(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CollectorRegistry]:
    monkeypatch.delenv("CQRS_METRICS", raising=False)
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    library_metrics.use_meter_provider(provider)
    try:
        yield registry
    finally:
        library_metrics.use_meter_provider(None)
        provider.shutdown()


async def _move_every_metric(engine: AsyncEngine, dialect_name: str) -> None:
    """The work each documented metric measures, once."""
    store = SQLAlchemyEventStore(engine)
    # Unit of work: a commit, a conflict, a retryable failure (a real lock timeout).
    async with SQLAlchemyUnitOfWork(engine) as uow:
        await store.append(StoredEvent(event_type="OrderPlaced", aggregate_id="o-1"), uow=uow)
        await uow.commit()
    with pytest.raises(WrongExpectedVersionError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await store.append(
                StoredEvent(event_type="OrderPlaced", aggregate_id="o-1"),
                expected_version=StreamState.NO_STREAM,
                uow=uow,
            )
            await uow.commit()
    if dialect_name == "sqlite":
        impatient = create_engine(str(engine.url), lock_timeout_ms=200)
    else:
        schema = schema_of(engine)
        assert schema is not None
        impatient = pg_engine_for(schema, lock_timeout_ms=200)
    try:
        async with SQLAlchemyUnitOfWork(engine) as holder:
            await store.append(
                StoredEvent(event_type="OrderPlaced", aggregate_id="o-2"), uow=holder
            )
            with pytest.raises(LockTimeoutError):
                async with SQLAlchemyUnitOfWork(impatient) as waiter:
                    await SQLAlchemyEventStore(impatient).append(
                        StoredEvent(event_type="OrderPlaced", aggregate_id="o-2"), uow=waiter
                    )
            await holder.commit()
    finally:
        await impatient.dispose()

    # Outbox: one message published by the relay, one dead-lettered, one left pending.
    outbox = SQLAlchemyOutboxStorage(engine)
    await outbox.save_messages([OutboxMessage(event_type="A") for _ in range(2)])
    (refused,) = await outbox.claim(1)
    await outbox.fail([refused], error="refused", retry=False)
    assert await OutboxRelay(outbox, InMemoryPublisher(), listen=False).run_once() == 1
    await outbox.save_messages([OutboxMessage(event_type="A")])

    # Jobs: one run by the worker.
    await SQLAlchemyBackgroundJobRepository(Invoice, engine).enqueue(Invoice())
    await JobWorker(SQLAlchemyBackgroundJobRepository(BackgroundJob, engine)).run_until_idle()

    # Leases: the second takes over the first, whose next fenced write is refused.
    first = Lease(engine, "exported", duration=0.3, renew_interval=0.1)
    second = Lease(engine, "exported", duration=0.3, renew_interval=0.1)
    assert await first.acquire()
    await asyncio.sleep(0.4)
    assert await second.acquire()
    with pytest.raises(LeaseLostError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await first.fence(uow)
    await second.release()

    # A projection with a checkpoint, a saga.
    projection = Projection("order_count", collections=["order_count"])

    @projection.on("OrderPlaced")
    async def placed(event: StoredEvent, ctx: ProjectionContext) -> None:
        return None

    await ProjectionRunner(
        projection,
        event_store=store,
        session_factory=async_sessionmaker(engine, expire_on_commit=False),
    ).run_once(wait=True)
    saga = Checkout()
    saga.start()
    await SQLAlchemySagaRepository(Checkout, engine).add(saga)

    await DatabaseGauges(engine).refresh()


async def test_every_documented_metric_is_exported_to_prometheus(
    engine: AsyncEngine, dialect_name: str, registry: CollectorRegistry
) -> None:
    await _move_every_metric(engine, dialect_name)
    page = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_"))
            )
            samples.setdefault(sample.name, {})[labels] = sample.value

    def one(name: str, **labels: str) -> float:
        return samples[name][tuple(sorted(labels.items()))]

    for spec in METRICS:
        exported = spec.prometheus_name + ("_count" if spec.instrument == "histogram" else "")
        assert exported in samples, f"{spec.name} is not exported as {spec.prometheus_name}"
    assert one("cqrs_uow_commits_total") >= 3  # the relay's and the worker's included
    assert one("cqrs_uow_conflicts_total") == 1
    assert one("cqrs_uow_retryable_failures_total") == 1
    assert one("cqrs_outbox_publish_duration_seconds_count", messaging_system="memory") == 1
    assert one("cqrs_outbox_pending") == 1
    assert one("cqrs_outbox_dead") == 1
    assert one("cqrs_outbox_oldest_age_seconds") >= 0
    invoice = Invoice.job_type()
    assert one("cqrs_jobs", job_type=invoice, status="completed") == 1
    assert one("cqrs_jobs_run_duration_seconds_count", job_type=invoice, outcome="completed") == 1
    assert one("cqrs_lease_losses_total", component="exported") == 1
    assert one("cqrs_lease_fencing_refusals_total", component="exported") == 1
    assert one("cqrs_projection_lag", projection="order_count") == 0
    assert one("cqrs_projection_checkpoint_age_seconds", projection="order_count") >= 0
    assert one("cqrs_sagas", status="running") == 1
    assert one("cqrs_eventstore_horizon_lag") >= 0
    assert one("cqrs_eventstore_horizon_age_seconds") >= 0
