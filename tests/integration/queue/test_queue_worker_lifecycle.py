"""Every queue-backed worker starts and stops the same way (``WorkerLifecycle``): ``await
run()``, ``await run_once()``, and ``stop()`` — awaited (waits until ``run()`` returned) or
called plainly, as a signal handler does (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.jobs import BackgroundJob
from cqrs_ddd_advanced_core.sagas import SagaOrchestrator
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    JobWorker,
    SagaRecoveryWorker,
    SchedulerWorker,
    SQLAlchemyBackgroundJobRepository,
    SQLAlchemyCommandScheduler,
    SQLAlchemySagaRepository,
)
from cqrs_ddd_persistence_sqlalchemy.core import OutboxRelay, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher
from cqrs_ddd_persistence_sqlalchemy.workers import WorkerLifecycle


class LifecycleSaga(SagaState):
    pass


async def _dispatch(command: Any) -> None:
    return None


# Idle workers that would sleep an hour between polls: only a stop ends their run().
WORKERS: dict[str, Callable[[AsyncEngine], WorkerLifecycle]] = {
    "relay": lambda e: OutboxRelay(
        SQLAlchemyOutboxStorage(e), InMemoryPublisher(), poll_interval=3600
    ),
    "jobs": lambda e: JobWorker(
        SQLAlchemyBackgroundJobRepository(BackgroundJob, e), poll_interval=3600
    ),
    "scheduler": lambda e: SchedulerWorker(
        SQLAlchemyCommandScheduler(e), _dispatch, poll_interval=3600
    ),
    "sagas": lambda e: SagaRecoveryWorker(
        [SagaOrchestrator(SQLAlchemySagaRepository(LifecycleSaga, e))], e, poll_interval=3600
    ),
}


@pytest.fixture(params=sorted(WORKERS))
def worker(request: pytest.FixtureRequest, library_tables: AsyncEngine) -> WorkerLifecycle:
    return WORKERS[request.param](library_tables)


async def _started(worker: WorkerLifecycle) -> asyncio.Task[Any]:
    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if worker.is_running:
            await asyncio.sleep(0.05)  # past its first (empty) poll, asleep
            return task
        await asyncio.sleep(0.01)
    raise AssertionError("run() did not start")


async def test_awaiting_stop_waits_until_run_has_returned(worker: WorkerLifecycle) -> None:
    task = await _started(worker)
    await asyncio.wait_for(worker.stop(), 10)
    assert task.done() and task.exception() is None
    assert not worker.is_running


async def test_a_plain_stop_call_stops_the_worker(worker: WorkerLifecycle) -> None:
    task = await _started(worker)
    worker.stop()  # what a signal handler does: ask, do not wait
    await asyncio.wait_for(task, 10)
    assert not worker.is_running


async def test_stop_before_run_is_honoured_and_run_once_counts(worker: WorkerLifecycle) -> None:
    assert await worker.run_once() == 0  # nothing due
    worker.stop()
    await asyncio.wait_for(worker.run(), 10)  # returns at once
    task = await _started(worker)  # the stop was used up: the worker runs again
    await asyncio.wait_for(worker.stop(), 10)
    assert task.done()
