"""JobWorker's loop and per-job path: claims fill every free slot, the handler runs in the
job's own task (the heartbeat stops it by cancelling that task), stop() wakes the loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from jobs_test_models import EchoJob, SlowJob
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext, JobStatus
from cqrs_ddd_core.errors import SerializationError
from cqrs_ddd_persistence_sqlalchemy.advanced import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.jobs import jobs_table

Repo = SQLAlchemyBackgroundJobRepository[BackgroundJob]


@pytest.fixture
def jobs(library_tables: AsyncEngine) -> Repo:
    return SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables, lease_seconds=5)


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _take_lease_away(engine: AsyncEngine, job_id: str) -> None:
    """Another worker took the job over: its lease token is no longer ours."""
    async with engine.begin() as conn:
        await conn.execute(
            update(jobs_table)
            .where(jobs_table.c.job_id == job_id)
            .values(lease_token="someone-else")
        )


async def test_claims_take_every_slot_freed_while_waiting_for_the_connection(
    jobs: Repo,
) -> None:
    await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(30)])
    limits: list[int] = []
    claim = jobs.claim

    async def recording(limit: int = 1, **kw: Any) -> Any:
        limits.append(limit)
        return await claim(limit, **kw)

    jobs.claim = recording  # type: ignore[method-assign]

    async def handler(job: EchoJob, ctx: JobContext) -> str:
        return job.text  # no await: every job of a batch is ready to settle at once

    worker = JobWorker(
        jobs, handlers={EchoJob: handler}, concurrency=10, prefetch=10, poll_interval=0.01
    )
    assert await worker.run_until_idle() == 30
    # The loop's claim queues for the held connection behind the batch's settles; by the
    # time it has the connection the whole batch is settled: full claims, not 9 then 1.
    assert limits == [10, 10, 10, 10]
    assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 30


async def test_a_lease_lost_while_running_stops_the_handler_and_writes_nothing(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    started = asyncio.Event()
    outcome: list[str] = []

    async def slow(job: SlowJob, ctx: JobContext) -> str:
        started.set()
        try:
            await asyncio.sleep(job.seconds)
        except asyncio.CancelledError:
            outcome.append("stopped")
            raise
        outcome.append("finished")
        return "late"

    job_id = await jobs.enqueue(SlowJob(seconds=30))
    worker = JobWorker(jobs, handlers={SlowJob: slow}, heartbeat_interval=0.05, poll_interval=0.01)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        await _take_lease_away(library_tables, job_id)
        await wait_until(lambda: worker.processed == 1)
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 10)
    assert outcome == ["stopped"]
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.RUNNING  # still the other worker's: nothing was written
    assert job.attempts == 0 and job.result is None


async def test_a_handler_that_swallows_the_stop_is_not_completed_after_a_lost_lease(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    started = asyncio.Event()

    async def stubborn(job: SlowJob, ctx: JobContext) -> str:
        started.set()
        # A handler should not swallow the cancellation; the worker must still not complete it.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(job.seconds)
        return "done anyway"

    job_id = await jobs.enqueue(SlowJob(seconds=30))
    worker = JobWorker(
        jobs, handlers={SlowJob: stubborn}, heartbeat_interval=0.05, poll_interval=0.01
    )
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        await _take_lease_away(library_tables, job_id)
        await wait_until(lambda: worker.processed == 1)
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 10)
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.RUNNING and job.result is None


async def test_cancellation_requested_while_running_stops_the_handler_in_its_task(
    jobs: Repo,
) -> None:
    started = asyncio.Event()
    tasks: list[asyncio.Task[Any] | None] = []

    async def slow(job: SlowJob, ctx: JobContext) -> None:
        tasks.append(asyncio.current_task())
        started.set()
        await asyncio.sleep(job.seconds)

    job_id = await jobs.enqueue(SlowJob(seconds=30))
    worker = JobWorker(jobs, handlers={SlowJob: slow}, heartbeat_interval=0.05, poll_interval=0.01)
    run = asyncio.create_task(worker.run_until_idle())
    await asyncio.wait_for(started.wait(), 10)
    assert tasks[0] in worker._running  # the job's own task, no second one for the handler
    assert await jobs.cancel(job_id) is JobStatus.RUNNING
    assert await asyncio.wait_for(run, 10) == 1
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.CANCELLED
    assert tasks[0] is not None and not tasks[0].cancelled()  # it ended normally


async def test_stop_wakes_a_loop_sleeping_for_its_poll_interval(jobs: Repo) -> None:
    worker = JobWorker(jobs, poll_interval=3600)
    task = asyncio.create_task(worker.run())
    await wait_until(lambda: worker._wakeup is not None)  # asleep, nothing to do
    await asyncio.wait_for(worker.stop(), 10)
    await asyncio.wait_for(task, 10)


async def test_complete_many_fences_each_job_and_joins_a_unit_of_work(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork

    ids = [await jobs.enqueue(EchoJob(text=str(i))) for i in range(4)]
    claimed = {c.id: c for c in await jobs.claim(4)}
    async with library_tables.begin() as conn:  # job 2 was taken over meanwhile
        await conn.execute(
            update(jobs_table).where(jobs_table.c.job_id == ids[2]).values(lease_token="other")
        )
    async with SQLAlchemyUnitOfWork(library_tables):  # ambient, rolled back on exit
        assert await jobs.complete_many([(claimed[ids[0]], "rolled back")]) == []
    lost = await jobs.complete_many(
        [(claimed[i], {"n": n, "text": '"quoted"'}) for n, i in enumerate(ids[:3])]
    )
    assert [c.id for c in lost] == [ids[2]]
    assert await jobs.complete_many([(claimed[ids[0]], "again")]) == [claimed[ids[0]]]
    stored: list[Any] = [await jobs.get(i) for i in ids]
    assert [j.status for j in stored] == [JobStatus.COMPLETED] * 2 + [JobStatus.RUNNING] * 2
    assert [j.result for j in stored[:2]] == [
        {"n": 0, "text": '"quoted"'},
        {"n": 1, "text": '"quoted"'},
    ]
    assert [j.attempts for j in stored] == [1, 1, 0, 0]
    with pytest.raises(SerializationError):  # refused before anything is written
        await jobs.complete_many([(claimed[ids[3]], 1), (claimed[ids[3]], float("nan"))])
    assert (await jobs.get(ids[3])).status is JobStatus.RUNNING  # type: ignore[union-attr]


async def test_jobs_finishing_together_are_completed_in_one_statement(jobs: Repo) -> None:
    await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(20)])
    batches: list[int] = []
    complete_encoded = jobs._complete_encoded

    async def recording(completed: Any, **kw: Any) -> Any:
        batches.append(len(completed))
        return await complete_encoded(completed, **kw)

    jobs._complete_encoded = recording  # type: ignore[method-assign]

    async def handler(job: EchoJob, ctx: JobContext) -> str:
        return job.text  # no await: the 20 jobs finish in the same loop iteration

    worker = JobWorker(jobs, handlers={EchoJob: handler}, concurrency=20, poll_interval=0.01)
    assert await worker.run_until_idle() == 20
    # The first settles alone (nothing else to settle yet); the 19 that finished while its
    # statement ran share the next one.
    assert batches == [1, 19]
    stored: list[Any] = [await jobs.get(c) for c in await completed_ids(jobs)]
    assert sorted(j.result for j in stored) == sorted(str(i) for i in range(20))


async def test_an_unencodable_result_fails_only_its_own_job(jobs: Repo) -> None:
    ids = [await jobs.enqueue(EchoJob(text=str(i))) for i in range(3)]

    async def handler(job: EchoJob, ctx: JobContext) -> Any:
        return float("nan") if job.text == "1" else job.text

    worker = JobWorker(jobs, handlers={EchoJob: handler}, concurrency=3, poll_interval=0.01)
    assert await worker.run_until_idle() == 3
    stored: list[Any] = [await jobs.get(i) for i in ids]
    assert [j.status for j in stored] == [
        JobStatus.COMPLETED,
        JobStatus.RUNNING,  # not recorded: its lease expires and it runs again
        JobStatus.COMPLETED,
    ]


async def completed_ids(jobs: Repo) -> list[str]:
    async with jobs.queue.transaction() as executor:
        rows = await executor.fetch(
            select(jobs_table.c.job_id).where(jobs_table.c.status == "done")
        )
        return [str(r[0]) for r in rows]
