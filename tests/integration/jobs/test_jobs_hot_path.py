"""The claim / settle hot path of jobs and the durable queue, on SQLite and PostgreSQL.

Outside a unit of work one-statement operations run in autocommit (on asyncpg straight on the
driver connection, statements built once); inside one they join its transaction. A worker
loop may hold one connection (``pinned()``); ``JobWorker`` does, and re-pins after a failure.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from jobs_test_models import EchoJob
from sqlalchemy import Column, MetaData, String, Table, bindparam, event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext, JobStatus
from cqrs_ddd_core.errors import (
    ConfigurationError,
    LeaseLostError,
    RetryableError,
    SerializationError,
)
from cqrs_ddd_persistence_sqlalchemy.advanced import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.jobs.running import JobRun
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, queue_columns, queue_indexes
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION

Factory = async_sessionmaker[AsyncSession]
Repo = SQLAlchemyBackgroundJobRepository[BackgroundJob]

ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


def conftest() -> Any:
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture
def jobs(library_tables: AsyncEngine) -> Repo:
    return SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables, lease_seconds=5)


def count_checkouts(engine: AsyncEngine) -> Callable[[], int]:
    seen = [0]

    def on_checkout(*_: Any) -> None:
        seen[0] += 1

    event.listen(engine.sync_engine, "checkout", on_checkout)
    return lambda: seen[0]


async def test_pinned_loop_uses_one_connection_and_settles_every_job(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    ids = [await jobs.enqueue(EchoJob(text=str(i))) for i in range(12)]
    checkouts = count_checkouts(library_tables)
    done: list[str] = []
    async with jobs.pinned():
        while claimed := await jobs.claim(5):
            for c in claimed:
                assert isinstance(c.job, EchoJob)
                at = datetime(2026, 1, 1, tzinfo=UTC)
                await jobs.complete(c, {"echo": c.job.text, "at": at})
                done.append(c.job.text)
    assert sorted(done, key=int) == [str(i) for i in range(12)]
    assert checkouts() == 1
    if library_tables.dialect.driver == "asyncpg":  # claim and complete ran on the driver
        from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import compiled_for

        kept = list(jobs.queue._statements.values())
        assert len(kept) == 3  # the enqueue, the claim and the fenced completion
        assert all(compiled_for(stmt, library_tables.dialect) is not None for stmt in kept)
    counts = await jobs.count_by_status()
    assert counts[JobStatus.COMPLETED] == 12
    # The result went through the library's JSON codec (datetime -> ISO text).
    job: Any = await jobs.get(ids[3])
    assert job.result == {"echo": "3", "at": "2026-01-01T00:00:00+00:00"}


async def test_pin_is_lent_one_task_at_a_time_and_not_after_the_block(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(6)])
    checkouts = count_checkouts(library_tables)
    async with jobs.pinned() as pin:
        assert pin is not None
        claimed = await jobs.claim(6)

        async def settle(c: Any) -> None:
            with DurableQueue.unpinned():
                async with pin.borrow():
                    await jobs.complete(c, "ok")

        await asyncio.gather(*(settle(c) for c in claimed))
        assert checkouts() == 1
    async with pin.borrow():  # the block is over: the pool serves the borrower
        assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 6
    assert checkouts() == 2


async def test_worker_claims_and_settles_on_its_held_connection(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(30)])
    checkouts = count_checkouts(library_tables)

    async def handler(job: EchoJob, ctx: JobContext) -> str:
        await asyncio.sleep(0)
        return job.text  # no progress report: those use the pool (concurrent with settles)

    worker = JobWorker(
        jobs, handlers={EchoJob: handler}, concurrency=8, poll_interval=0.01, heartbeat_interval=30
    )
    assert await worker.run_until_idle() == 30
    assert checkouts() == 1
    assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 30


async def test_driver_and_unit_of_work_paths_store_the_same_values(
    jobs: Repo, session_factory: Factory
) -> None:
    a_id = await jobs.enqueue(EchoJob(text="a"))
    b_id = await jobs.enqueue(EchoJob(text="b"))
    claimed = {c.id: c for c in await jobs.claim(2)}
    result = {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "text": "é\u2603", "n": [1, 2]}
    assert await jobs.progress(claimed[a_id], 0.5, "half") is False
    await jobs.complete(claimed[a_id], result)  # own transaction (driver on asyncpg)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.complete(claimed[b_id], result, uow=uow)  # the caller's transaction
        await uow.commit()
    a: Any = await jobs.get(a_id)
    b: Any = await jobs.get(b_id)
    assert a.status is b.status is JobStatus.COMPLETED
    assert a.result == b.result == {"when": "2026-01-02T03:04:05+00:00", "text": "é☃", "n": [1, 2]}
    assert a.progress == b.progress == 1.0
    assert a.attempts == b.attempts == 1
    assert a.finished_at is not None and a.finished_at.tzinfo is not None
    with pytest.raises(LeaseLostError):
        await jobs.complete(claimed[a_id], "again")  # fenced: the lease is gone


async def test_result_encoding_is_the_same_on_every_path(
    jobs: Repo, session_factory: Factory
) -> None:
    ids = [await jobs.enqueue(EchoJob(text=str(i))) for i in range(4)]
    claimed = {c.id: c for c in await jobs.claim(4)}
    text_result, nothing, nan = '{"looks": "like json"}', None, {"x": float("nan")}
    await jobs.complete(claimed[ids[0]], text_result)  # own statement (driver on asyncpg)
    await jobs.complete(claimed[ids[1]], nothing)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.complete(claimed[ids[2]], text_result, uow=uow)  # the caller's transaction
        await uow.commit()
    results = [getattr(await jobs.get(i), "result", "missing") for i in ids[:3]]
    assert results == [text_result, None, text_result]  # a JSON string stays a string
    with pytest.raises(SerializationError):
        await jobs.complete(claimed[ids[3]], nan)  # refused before anything is written
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        with pytest.raises(SerializationError):
            await jobs.complete(claimed[ids[3]], nan, uow=uow)
    await jobs.complete(claimed[ids[3]], "fine")  # still leased to us: nothing was written
    assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 4


async def test_cancel_request_reaches_the_heartbeat_on_every_path(jobs: Repo) -> None:
    job_id = await jobs.enqueue(EchoJob())
    [claimed] = await jobs.claim()
    assert await jobs.heartbeat(claimed) is False
    assert await jobs.cancel(job_id) is JobStatus.RUNNING
    assert await jobs.heartbeat(claimed) is True
    assert await jobs.progress(claimed, 0.2) is True
    await jobs.mark_cancelled(claimed)
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.CANCELLED


async def test_claim_only_types_is_a_parameter_not_a_new_statement(jobs: Repo) -> None:
    class OtherJob(BackgroundJob):
        async def execute(self, ctx: JobContext) -> None:
            return None

    await jobs.enqueue(EchoJob(text="e"))
    await jobs.enqueue(OtherJob())
    assert [c.job_type for c in await jobs.claim(5, job_types=["OtherJob"])] == ["OtherJob"]
    assert [c.job_type for c in await jobs.claim(5, job_types=["Nope"])] == []
    assert [c.job_type for c in await jobs.claim(5)] == ["EchoJob"]
    claim_statements = [k for k in jobs.queue._statements if k[1][0] == "claim"]
    assert len(claim_statements) == 1


def make_table() -> Table:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    return Table(
        "hot_items",
        md,
        *queue_columns(),
        Column("kind", String(20), nullable=False),
        Column("name", String(50), nullable=False),
        *queue_indexes("hot_items"),
    )


async def test_queue_claim_only_and_run(engine: AsyncEngine, session_factory: Factory) -> None:
    t = make_table()
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.create_all)
    q = DurableQueue(t, engine, lease_seconds=10)
    await q.enqueue([{"kind": k, "name": f"{k}{i}"} for i in range(3) for k in ("a", "b", "c")])
    got = await q.claim(10, only={"kind": ["a", "c"]})
    assert sorted(c["name"] for c in got) == ["a0", "a1", "a2", "c0", "c1", "c2"]
    with pytest.raises(ConfigurationError):
        await q.claim(1, only={"missing": ["x"]})
    assert (await q.complete(got)).done == tuple(sorted(c.id for c in got))

    def rename(_dialect: Any) -> Any:
        return (
            update(t)
            .where(t.c.kind == bindparam("b_kind", type_=String()))
            .values(name=bindparam("new", type_=String()))
            .returning(t.c.id)
        )

    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        rows = await q.run("rename", rename, {"b_kind": "b", "new": "x"}, uow=uow)
        assert len(rows) == 3  # rolled back: not committed
    async with engine.connect() as conn:
        assert "x" not in (await conn.execute(select(t.c.name))).scalars().all()
    rows = await q.run("rename", rename, {"b_kind": "b", "new": "y"})
    assert sorted(r["id"] for r in rows) == sorted(
        c.id for c in await q.claim(10, only={"kind": ["b"]})
    )
    async with engine.connect() as conn:
        names = (await conn.execute(select(t.c.name).where(t.c.kind == "b"))).scalars().all()
    assert names == ["y", "y", "y"]


async def test_worker_beats_only_for_jobs_that_outlive_the_interval(
    jobs: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(job: EchoJob, ctx: JobContext) -> str:
        if job.text == "slow":
            await asyncio.sleep(0.35)
        return job.text

    await jobs.enqueue_many([EchoJob(text="fast") for _ in range(5)] + [EchoJob(text="slow")])
    worker = JobWorker(
        jobs, handlers={EchoJob: handler}, concurrency=8, poll_interval=0.01, heartbeat_interval=0.1
    )
    beats: list[str] = []
    real = JobRun.heartbeat

    async def counting(run: JobRun, ctx: Any, interval: float) -> None:
        beats.append(ctx._claimed.job.text)
        await real(run, ctx, interval)

    monkeypatch.setattr(JobRun, "heartbeat", counting)
    assert await worker.run_until_idle() == 6
    assert beats == ["slow"]
    counts = await jobs.count_by_status()
    assert counts[JobStatus.COMPLETED] == 6


async def test_worker_heartbeat_sees_cancellation(jobs: Repo) -> None:
    started = asyncio.Event()

    async def handler(job: EchoJob, ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(10)

    job_id = await jobs.enqueue(EchoJob())
    worker = JobWorker(
        jobs, handlers={EchoJob: handler}, poll_interval=0.01, heartbeat_interval=0.05
    )
    task = asyncio.create_task(worker.run_until_idle())
    await asyncio.wait_for(started.wait(), 5)
    assert await jobs.cancel(job_id) is JobStatus.RUNNING
    assert await asyncio.wait_for(task, 5) == 1
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.CANCELLED


async def test_outbox_channel_longer_than_63_bytes(engine: AsyncEngine) -> None:
    ok = SQLAlchemyOutboxStorage(engine, channel="é" * 31)  # 62 bytes
    assert ok.channel == "é" * 31
    SQLAlchemyOutboxStorage(engine, channel="x" * 64, notify=False)  # never notifies
    if engine.dialect.name == "postgresql":
        from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.listen import NotificationListener

        with pytest.raises(ConfigurationError):
            SQLAlchemyOutboxStorage(engine, channel="x" * 64)
        with pytest.raises(ConfigurationError):
            NotificationListener(engine, "é" * 32)
    else:
        SQLAlchemyOutboxStorage(engine, channel="x" * 64)  # SQLite has no NOTIFY


@pytest.mark.postgres_only
async def test_outbox_long_channel_on_a_session_factory_fails_at_construction(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    # The bind rule finds the engine behind a session factory at once, so the channel is
    # checked when the outbox is built, not at its first save.
    with pytest.raises(ConfigurationError):
        SQLAlchemyOutboxStorage(session_factory, channel="y" * 64)


@pytest.mark.postgres_only
async def test_driver_path_connection_loss_is_retryable_then_recovers(
    library_tables: AsyncEngine,
) -> None:
    helpers = conftest()
    schema = helpers.schema_of(library_tables)
    app_name = f"hot-{uuid.uuid4().hex[:8]}"
    engine: AsyncEngine = helpers.pg_engine_for(
        schema, connect_args={"server_settings": {"application_name": app_name}}
    )
    jobs: Repo = SQLAlchemyBackgroundJobRepository(BackgroundJob, engine, lease_seconds=5)
    admin = await asyncpg.connect(helpers.pg_dsn())
    try:
        await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(3)])
        [first] = await jobs.claim(1)
        await jobs.complete(first, "ok")
        async with jobs.pinned():
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                app_name,
            )
            await asyncio.sleep(0.2)
            with pytest.raises(RetryableError):
                await jobs.claim(1)
            # Then the statements run on pooled connections, in autocommit, until the block
            # pins again (never on the pin reconnected by SQLAlchemy without its autocommit).
            [second] = await jobs.claim(1)
            await jobs.complete(second, "ok")
            with jobs.queue.unpinned():
                assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 2
        # A fresh pin (and the pool) hand out live connections again.
        async with jobs.pinned():
            claimed = await jobs.claim(5)
            for c in claimed:
                await jobs.complete(c, "ok")
        assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 3
    finally:
        await admin.close()
        await engine.dispose()


@pytest.mark.postgres_only
async def test_worker_repins_after_its_connection_is_terminated(
    library_tables: AsyncEngine,
) -> None:
    helpers = conftest()
    schema = helpers.schema_of(library_tables)
    app_name = f"hotw-{uuid.uuid4().hex[:8]}"
    engine: AsyncEngine = helpers.pg_engine_for(
        schema, connect_args={"server_settings": {"application_name": app_name}}
    )
    jobs: Repo = SQLAlchemyBackgroundJobRepository(BackgroundJob, engine, lease_seconds=5)
    writer: Repo = SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables)
    worker = JobWorker(jobs, poll_interval=0.05)
    task = asyncio.create_task(worker.run())
    admin = await asyncpg.connect(helpers.pg_dsn())
    try:
        await writer.enqueue_many([EchoJob(text="before")])
        await wait_until(lambda: worker.processed >= 1)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            app_name,
        )
        assert killed >= 1
        await writer.enqueue_many([EchoJob(text="after") for _ in range(3)])
        await wait_until(lambda: worker.processed >= 4)
        assert (await writer.count_by_status())[JobStatus.COMPLETED] == 4
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 10)
        await admin.close()
        await engine.dispose()


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
