"""The queries behind the operations page, on SQLite and PostgreSQL: jobs per type and status,
sagas per type and status, the session holding the event store's horizon back, and the page's
snapshot (components whose tables are missing left out)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import PG_URL, pg_dsn, schema_of

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobStatus
from cqrs_ddd_core import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.snapshot import take_snapshot
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository, jobs_table
from cqrs_ddd_persistence_sqlalchemy.sagas import count_sagas_by_type, sagas_table


class OpsMailJob(BackgroundJob):
    pass


class OpsReportJob(BackgroundJob):
    pass


async def test_jobs_count_by_type_and_status(library_tables: AsyncEngine) -> None:
    jobs = SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables)
    assert await jobs.count_by_type() == {}
    for _ in range(2):
        await jobs.enqueue(OpsMailJob())
    await jobs.enqueue(OpsReportJob())
    (claimed,) = await jobs.claim(1, job_types=[OpsReportJob.job_type()])
    await jobs.fail(claimed, "boom", retry=False)
    await jobs.claim(1, job_types=[OpsMailJob.job_type()])  # running

    counts = await jobs.count_by_type()
    assert counts == {
        OpsMailJob.job_type(): {JobStatus.PENDING: 1, JobStatus.RUNNING: 1},
        OpsReportJob.job_type(): {JobStatus.DEAD: 1},
    }
    assert list(counts) == sorted(counts)
    by_status = await jobs.count_by_status()
    for status, total in by_status.items():
        assert total == sum(c.get(status, 0) for c in counts.values())


async def test_sagas_count_by_type_and_status(library_tables: AsyncEngine) -> None:
    assert await count_sagas_by_type(library_tables) == {}
    now = datetime.now(UTC)
    rows = [("B", "RUNNING"), ("A", "FAILED"), ("A", "RUNNING"), ("A", "RUNNING"), ("A", "NEW")]
    async with library_tables.begin() as conn:
        await conn.execute(
            insert(sagas_table),
            [
                {
                    "saga_id": f"s{i}",
                    "saga_type": saga_type,
                    "saga_status": status,
                    "version": 1,
                    "state": {},
                    "updated_at": now,
                }
                for i, (saga_type, status) in enumerate(rows)
            ],
        )
    counts = await count_sagas_by_type(library_tables)
    # A status this version does not know ("NEW") is counted, not an error.
    assert counts == {"A": {"FAILED": 1, "NEW": 1, "RUNNING": 2}, "B": {"RUNNING": 1}}
    assert list(counts) == ["A", "B"]


async def test_horizon_holder(library_tables: AsyncEngine, dialect_name: str) -> None:
    support = dialect_for(library_tables)
    runner = execution_for(library_tables)
    if dialect_name == "sqlite":
        assert await support.horizon_holder(runner) is None
        return
    app = f"ops-{schema_of(library_tables)}"
    holder = await asyncpg.connect(pg_dsn(PG_URL), server_settings={"application_name": app})
    try:
        async with holder.transaction():
            await holder.fetchval("SELECT pg_current_xact_id()")
            pid = await holder.fetchval("SELECT pg_backend_pid()")
            await asyncio.sleep(0.01)
            found = await support.horizon_holder(runner)
            assert found is not None
            assert (found.pid, found.application) == (pid, app)
            assert found.state == "idle in transaction"
            assert found.query is not None and "pg_backend_pid" in found.query
            assert found.xact_age_s is not None and found.xact_age_s > 0
            # The event store's horizon names the same session.
            status = await SQLAlchemyEventStore(library_tables).horizon_lag()
            assert status.oldest_pid == pid
    finally:
        await holder.close()
    assert await support.horizon_holder(runner) is None


async def test_snapshot_reads_every_component(library_tables: AsyncEngine) -> None:
    await SQLAlchemyEventStore(library_tables).append(StoredEvent(event_type="E", aggregate_id="a"))
    await SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables).enqueue(OpsMailJob())
    snap = await take_snapshot(library_tables)
    assert snap.missing == ()
    assert snap.outbox is not None and snap.outbox.stats.pending == 0
    assert snap.outbox.dead_letters == ()
    assert snap.jobs is not None and snap.jobs.by_status[JobStatus.PENDING] == 1
    assert snap.jobs.by_type == {OpsMailJob.job_type(): {JobStatus.PENDING: 1}}
    assert snap.projections is not None and snap.projections.head == 1
    assert snap.projections.lags == ()
    assert snap.sagas == {}
    assert snap.event_store is not None and snap.event_store.events == 1


async def test_snapshot_leaves_out_components_without_tables(
    engine: AsyncEngine, dialect_name: str
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(jobs_table.create)
    snap = await take_snapshot(engine)
    assert snap.jobs is not None and snap.jobs.by_type == {}
    assert snap.outbox is None and snap.sagas is None and snap.event_store is None
    assert snap.projections is None
    assert "outbox_messages" in snap.missing and jobs_table.name not in snap.missing


@pytest.mark.parametrize("limit", [1, 3])
async def test_snapshot_lists_dead_letters_up_to_its_limit(
    library_tables: AsyncEngine, limit: int
) -> None:
    from cqrs_ddd_core.ports.outbox import OutboxMessage
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage

    outbox = SQLAlchemyOutboxStorage(library_tables)
    await outbox.save_messages([OutboxMessage(event_type="E") for _ in range(2)])
    await outbox.fail(await outbox.claim(2), error="<b>x</b>", retry=False)
    snap = await take_snapshot(library_tables, dead_letters=limit)
    assert snap.outbox is not None and snap.outbox.stats.dead == 2
    assert len(snap.outbox.dead_letters) == min(limit, 2)
    assert {m.error for m in snap.outbox.dead_letters} == {"<b>x</b>"}
