"""The library's metrics on the OpenTelemetry SDK (in-memory reader), against known database
content on SQLite and PostgreSQL: every documented metric moves when the database does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from otel_sdk import metric_points, value
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_core.errors import (
    LeaseLostError,
    SerializationFailureError,
    WrongExpectedVersionError,
)
from cqrs_ddd_core.ports.event_store import StoredEvent, StreamState
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.observability import (
    METRICS,
    fencing_refused,
    lease_lost,
)
from cqrs_ddd_persistence_sqlalchemy.observability import metrics as library_metrics
from cqrs_ddd_persistence_sqlalchemy.observability.gauges import DatabaseGauges
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher
from cqrs_ddd_persistence_sqlalchemy.tables.projections import projection_positions_table
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table

pytestmark = pytest.mark.usefixtures("library_tables", "meters")


class Invoice(BackgroundJob):
    async def execute(self, ctx: JobContext) -> Any:
        return None


class Report(BackgroundJob):
    async def execute(self, ctx: JobContext) -> Any:
        raise RuntimeError("no data")


def _count(name: str, **attributes: str) -> float:
    return value(name, **attributes) or 0.0


def _histogram_count(name: str, **attributes: str) -> int:
    return sum(p.count for attrs, p in metric_points(name) if attrs == attributes)


async def test_outbox_gauges_follow_the_table_and_the_relay(engine: AsyncEngine) -> None:
    outbox = SQLAlchemyOutboxStorage(engine)
    gauges = DatabaseGauges(engine)
    await outbox.save_messages([OutboxMessage(event_type="A") for _ in range(3)])
    (claimed,) = await outbox.claim(1)
    await outbox.fail([claimed], error="refused", retry=False)
    await gauges.refresh()
    assert value("cqrs.outbox.pending") == 2
    assert value("cqrs.outbox.dead") == 1
    first_age = value("cqrs.outbox.oldest.age")
    assert first_age is not None and first_age >= 0

    await asyncio.sleep(0.05)  # the relay is stopped: the oldest message ages
    await gauges.refresh()
    later_age = value("cqrs.outbox.oldest.age")
    assert later_age is not None and later_age > first_age

    published = _histogram_count("cqrs.outbox.publish.duration", **{"messaging.system": "memory"})
    relay = OutboxRelay(outbox, InMemoryPublisher())
    assert await relay.run_once() == 2
    await gauges.refresh()
    assert value("cqrs.outbox.pending") == 0
    assert value("cqrs.outbox.oldest.age") == 0
    assert value("cqrs.outbox.dead") == 1
    after = _histogram_count("cqrs.outbox.publish.duration", **{"messaging.system": "memory"})
    assert after == published + 2


async def test_jobs_per_type_and_status_and_run_durations(engine: AsyncEngine) -> None:
    invoices = SQLAlchemyBackgroundJobRepository(Invoice, engine)
    reports = SQLAlchemyBackgroundJobRepository(Report, engine, lease_seconds=0.05)
    await invoices.enqueue_many([Invoice(), Invoice(), Invoice()])
    await reports.enqueue(Report(max_attempts=1))
    await reports.enqueue(Report(max_attempts=1))
    running = await invoices.claim(1)
    assert len(running) == 1
    (stalled,) = await reports.claim(1)  # its "worker" dies: the lease runs out
    await asyncio.sleep(0.1)
    gauges = DatabaseGauges(engine)
    await gauges.refresh()
    invoice, report = Invoice.job_type(), Report.job_type()
    assert value("cqrs.jobs", job_type=invoice, status="pending") == 2
    assert value("cqrs.jobs", job_type=invoice, status="running") == 1
    assert value("cqrs.jobs", job_type=report, status="stalled") == 1
    assert value("cqrs.jobs", job_type=report, status="pending") == 2  # stalled is pending

    # A write with the stale lease is refused by its fencing token.
    refused = _count("cqrs.lease.fencing_refusals", component="jobs")
    assert await SQLAlchemyBackgroundJobRepository(Report, engine).claim(1)  # taken over
    with pytest.raises(LeaseLostError):
        await reports.complete(stalled)
    assert _count("cqrs.lease.fencing_refusals", component="jobs") == refused + 1

    completed = _histogram_count("cqrs.jobs.run.duration", job_type=invoice, outcome="completed")
    failed = _histogram_count("cqrs.jobs.run.duration", job_type=report, outcome="failed")
    worker = JobWorker(SQLAlchemyBackgroundJobRepository(BackgroundJob, engine))
    await worker.run_until_idle()
    after_completed = _histogram_count(
        "cqrs.jobs.run.duration", job_type=invoice, outcome="completed"
    )
    assert after_completed == completed + 2  # the third invoice is still leased
    assert (
        _histogram_count("cqrs.jobs.run.duration", job_type=report, outcome="failed") == failed + 1
    )
    await gauges.refresh()
    assert value("cqrs.jobs", job_type=invoice, status="completed") == 2
    assert value("cqrs.jobs", job_type=report, status="dead") == 1


async def test_sagas_projections_and_horizon(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    rows = [("RUNNING", "s1"), ("RUNNING", "s2"), ("COMPLETED", "s3")]
    async with engine.begin() as conn:
        await conn.execute(
            insert(sagas_table),
            [
                {
                    "saga_id": saga_id,
                    "saga_type": "Checkout",
                    "saga_status": status,
                    "version": 1,
                    "state": {},
                    "updated_at": now,
                }
                for status, saga_id in rows
            ],
        )
    store = SQLAlchemyEventStore(engine)
    stored = await store.append([StoredEvent(event_type="E", aggregate_id="a") for _ in range(3)])
    async with engine.begin() as conn:
        await conn.execute(
            insert(projection_positions_table).values(
                projection="orders", position=stored[0].position, events_processed=1, updated_at=now
            )
        )
    gauges = DatabaseGauges(engine)
    await gauges.refresh()
    assert value("cqrs.sagas", status="running") == 2
    assert value("cqrs.sagas", status="completed") == 1
    assert value("cqrs.projection.lag", projection="orders") == 2
    age = value("cqrs.projection.checkpoint.age", projection="orders")
    assert age is not None and age >= 0
    # Other sessions of the server may hold the horizon back; these read the same view.
    status = await store.horizon_lag()
    assert value("cqrs.eventstore.horizon.lag") is not None
    assert value("cqrs.eventstore.horizon.age") is not None
    assert status.invisible_events >= 0


async def test_unit_of_work_commits_conflicts_and_lease_hooks(engine: AsyncEngine) -> None:
    store = SQLAlchemyEventStore(engine)
    commits, conflicts = _count("cqrs.uow.commits"), _count("cqrs.uow.conflicts")
    async with SQLAlchemyUnitOfWork(engine) as uow:
        await store.append(StoredEvent(event_type="E", aggregate_id="x"), uow=uow)
        await uow.commit()
    assert _count("cqrs.uow.commits") == commits + 1
    with pytest.raises(WrongExpectedVersionError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await store.append(
                StoredEvent(event_type="E", aggregate_id="x"),
                expected_version=StreamState.NO_STREAM,
                uow=uow,
            )
            await uow.commit()
    assert _count("cqrs.uow.conflicts") == conflicts + 1
    assert _count("cqrs.uow.commits") == commits + 1

    retryable = _count("cqrs.uow.retryable_failures")
    with pytest.raises(SerializationFailureError):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await store.append(StoredEvent(event_type="E", aggregate_id="z"), uow=uow)
            raise SerializationFailureError("could not serialize access")  # as the server says
    assert _count("cqrs.uow.retryable_failures") == retryable + 1
    assert _count("cqrs.uow.conflicts") == conflicts + 1

    losses = _count("cqrs.lease.losses", component="projection")
    lease_lost("projection")
    fencing_refused("projection", 2)
    assert _count("cqrs.lease.losses", component="projection") == losses + 1
    assert _count("cqrs.lease.fencing_refusals", component="projection") >= 2


async def test_metrics_off_records_nothing(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CQRS_METRICS", "0")
    library_metrics.reset()
    assert not library_metrics.enabled()
    commits = _count("cqrs.uow.commits")
    async with SQLAlchemyUnitOfWork(engine) as uow:
        await SQLAlchemyEventStore(engine).append(
            StoredEvent(event_type="E", aggregate_id="y"), uow=uow
        )
        await uow.commit()
    await DatabaseGauges(engine).refresh()
    assert _count("cqrs.uow.commits") == commits
    assert value("cqrs.outbox.pending") is None


def test_every_documented_metric_is_an_instrument() -> None:
    names = [spec.name for spec in METRICS]
    assert len(names) == len(set(names))
    assert {spec.instrument for spec in METRICS} <= {"counter", "histogram", "gauge"}
