"""SQLAlchemyBackgroundJobRepository and JobWorker on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta
from typing import Any

import pytest
from jobs_test_models import EchoJob, FlakyJob, SlowJob
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext, JobStatus
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    JobWorker,
    SQLAlchemyBackgroundJobRepository,
)
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def jobs(library_tables: AsyncEngine) -> SQLAlchemyBackgroundJobRepository[BackgroundJob]:
    return SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables, lease_seconds=5)


async def test_enqueue_in_uow_rolls_back_and_commits(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob], session_factory: Factory
) -> None:
    lost = EchoJob(text="lost")
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.enqueue(lost, uow=uow)
    assert await jobs.get(lost.id) is None
    kept = EchoJob(text="kept")
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.enqueue(kept)  # ambient
        await uow.commit()
    stored = await jobs.get(kept.id)
    assert isinstance(stored, EchoJob) and stored.text == "kept"
    assert stored.status is JobStatus.PENDING


async def test_dedupe_key_run_at_and_priorities(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    first = await jobs.enqueue(EchoJob(text="a"), dedupe_key="k1")
    again = await jobs.enqueue(EchoJob(text="b"), dedupe_key="k1")
    assert again == first
    await jobs.enqueue(EchoJob(text="later"), run_at=utc_now() + timedelta(hours=1))
    await jobs.enqueue_many([EchoJob(text="low", priority=-1), EchoJob(text="high", priority=10)])
    claimed = await jobs.claim(10)
    texts = [c.job.text for c in claimed if isinstance(c.job, EchoJob)]
    assert texts == ["high", "a", "low"]  # priority first, then age; "later" not due
    assert all(c.job is not None and c.job.status is JobStatus.RUNNING for c in claimed)
    counts = await jobs.count_by_status()
    assert counts[JobStatus.RUNNING] == 3 and counts[JobStatus.PENDING] == 1
    stats = await jobs.stats()
    assert (stats.leased, stats.scheduled, stats.lag_seconds) == (3, 1, 0.0)


async def test_progress_heartbeat_complete(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    job_id = await jobs.enqueue(EchoJob(text="x"))
    [claimed] = await jobs.claim()
    assert await jobs.progress(claimed, 0.25, "quarter") is False
    mid = await jobs.get(job_id)
    assert mid is not None and mid.progress == 0.25 and mid.progress_message == "quarter"
    assert await jobs.heartbeat(claimed) is False
    await jobs.complete(claimed, {"n": 1})
    done = await jobs.get(job_id)
    assert done is not None
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"n": 1} and done.attempts == 1 and done.progress == 1.0
    assert done.finished_at is not None
    with pytest.raises(LeaseLostError):
        await jobs.complete(claimed, {"n": 2})


async def test_fail_twice_then_succeed_attempts_and_backoff(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    runs: list[float] = []

    async def flaky(job: FlakyJob, ctx: JobContext) -> str:
        runs.append(time.monotonic())
        if len(runs) <= job.failures:
            raise RuntimeError(f"boom {len(runs)}")
        return "ok"

    job_id = await jobs.enqueue(FlakyJob(max_attempts=5))
    worker = JobWorker(jobs, handlers={FlakyJob: flaky}, poll_interval=0.02)
    deadline = time.monotonic() + 10
    while len(runs) < 3 and time.monotonic() < deadline:
        await worker.run_until_idle()
        await asyncio.sleep(0.02)
    done = await jobs.get(job_id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.attempts == 3 and done.result == "ok"
    assert done.error == "RuntimeError: boom 2"  # the last failure stays visible
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.2 * 0.95 and gaps[1] >= 0.4 * 0.95, gaps


async def test_dead_after_max_attempts_and_requeue(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    job_id = await jobs.enqueue(FlakyJob(max_attempts=2))
    for _ in range(2):
        claimed_now = await jobs.claim()
        for _ in range(50):
            if claimed_now:
                break
            await asyncio.sleep(0.02)  # FlakyJob's backoff: 0.2 s
            claimed_now = await jobs.claim()
        status = await jobs.fail(claimed_now[0], "nope")
    assert status is JobStatus.DEAD
    dead = await jobs.get(job_id)
    assert dead is not None and dead.status is JobStatus.DEAD and dead.attempts == 2
    assert [j.id for j in await jobs.dead_letters()] == [job_id]
    assert await jobs.requeue([job_id]) == 1
    back = await jobs.get(job_id)
    assert back is not None and back.status is JobStatus.PENDING and back.attempts == 0


async def test_unknown_job_type_is_not_claimed_by_this_repository(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob], library_tables: AsyncEngine
) -> None:
    echo_only = SQLAlchemyBackgroundJobRepository(EchoJob, library_tables)
    await jobs.enqueue(SlowJob())
    assert await echo_only.claim(5) == []
    assert len(await jobs.claim(5)) == 1


async def test_cancel_pending_and_running(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    waiting = await jobs.enqueue(EchoJob())
    assert await jobs.cancel(waiting) is JobStatus.CANCELLED
    assert (await jobs.get(waiting)).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert await jobs.claim() == []

    started = asyncio.Event()
    saw_cancel: list[bool] = []

    async def slow(job: SlowJob, ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.sleep(job.seconds)
        finally:
            saw_cancel.append(ctx.cancelled)

    running = await jobs.enqueue(SlowJob(seconds=10))
    worker = JobWorker(jobs, handlers={SlowJob: slow}, heartbeat_interval=0.05)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    assert await jobs.cancel(running) is JobStatus.RUNNING
    for _ in range(100):
        current = await jobs.get(running)
        if current is not None and current.status is JobStatus.CANCELLED:
            break
        await asyncio.sleep(0.05)
    assert current is not None and current.status is JobStatus.CANCELLED
    assert saw_cancel == [True]
    await worker.stop()
    await task
    assert await jobs.cancel(running) is JobStatus.CANCELLED  # terminal: unchanged
    assert await jobs.cancel("missing") is None


async def test_expired_lease_is_reclaimed_and_old_holder_fenced(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    job_id = await jobs.enqueue(EchoJob())
    [first] = await jobs.claim(lease_seconds=1.0)
    assert await jobs.claim() == []
    await asyncio.sleep(1.1)
    [second] = await jobs.claim()
    assert second.id == first.id == job_id
    with pytest.raises(LeaseLostError):
        await jobs.complete(first, "late")
    with pytest.raises(LeaseLostError):
        await jobs.heartbeat(first)
    await jobs.complete(second, "on time")
    done = await jobs.get(job_id)
    assert done is not None and done.result == "on time"


async def test_recover_stalled_counts_an_attempt_then_dead(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    job_id = await jobs.enqueue(EchoJob(max_attempts=2))
    await jobs.claim(lease_seconds=0.1)
    await asyncio.sleep(0.15)
    assert await jobs.recover_stalled() == 1
    job = await jobs.get(job_id)
    assert job is not None and job.status is JobStatus.PENDING and job.attempts == 1
    await jobs.claim(lease_seconds=0.1)
    await asyncio.sleep(0.15)
    assert await jobs.recover_stalled() == 1
    job = await jobs.get(job_id)
    assert job is not None and job.status is JobStatus.DEAD and "lease expired" in (job.error or "")


async def test_worker_concurrency_and_purge(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    active = 0
    peak = 0
    seen: list[str] = []

    async def handler(job: EchoJob, ctx: JobContext) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        seen.append(job.text)
        return job.text

    await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(40)])
    worker = JobWorker(jobs, handlers={"EchoJob": handler}, concurrency=4, poll_interval=0.01)
    assert await worker.run_until_idle() == 40
    assert sorted(seen, key=int) == [str(i) for i in range(40)]
    assert 1 < peak <= 4
    counts = await jobs.count_by_status()
    assert counts[JobStatus.COMPLETED] == 40
    assert await jobs.purge(timedelta(hours=1)) == 0
    assert await jobs.purge(timedelta(seconds=-1)) == 40


async def test_execute_method_and_graceful_shutdown_gives_jobs_back(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob],
) -> None:
    echo_id = await jobs.enqueue(EchoJob(text="hi"))
    started = asyncio.Event()

    async def slow(job: SlowJob, ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(job.seconds)

    slow_id = await jobs.enqueue(SlowJob(seconds=30))
    worker = JobWorker(jobs, handlers={SlowJob: slow}, shutdown_timeout=0.1)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    for _ in range(100):  # the short job finishes; the slow one is still running
        echo = await jobs.get(echo_id)
        if echo is not None and echo.status is JobStatus.COMPLETED:
            break
        await asyncio.sleep(0.05)
    await worker.stop()
    await task
    echo = await jobs.get(echo_id)
    assert echo is not None and echo.result == {"echo": "hi"} and echo.progress == 1.0
    given_back = await jobs.get(slow_id)
    assert given_back is not None
    assert given_back.status is JobStatus.PENDING and given_back.attempts == 0


async def test_complete_in_callers_uow_is_atomic(
    jobs: SQLAlchemyBackgroundJobRepository[BackgroundJob], session_factory: Factory
) -> None:
    job_id = await jobs.enqueue(EchoJob())
    [claimed] = await jobs.claim()
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.complete(claimed, "x", uow=uow)
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.RUNNING  # rolled back
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.complete(claimed, "x", uow=uow)
        await uow.commit()
    job = await jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED


async def test_repository_built_on_a_session_factory(session_factory: Factory) -> None:
    from cqrs_ddd_persistence_sqlalchemy import metadata

    async with session_factory() as session, session.begin():
        await session.run_sync(lambda s: metadata.create_all(s.connection()))
    jobs = SQLAlchemyBackgroundJobRepository(EchoJob, session_factory)
    job_id = await jobs.enqueue(EchoJob(text="sf"), dedupe_key="sf")
    [claimed] = await jobs.claim()
    assert await jobs.heartbeat(claimed) is False
    await jobs.complete(claimed, "done")
    job = await jobs.get(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.result == "done"
