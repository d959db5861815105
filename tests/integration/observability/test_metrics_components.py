"""The lease counters per ``component``: each worker that fences its writes counts its own
lost leases and refused writes (SQLite and PostgreSQL).

The scheduler's lease is taken over for real (it expires while the command is dispatched and a
second scheduler claims it). The outbox relay and the job worker renew their leases while they
work, so a takeover is written as the other worker's claim would leave the row: a lease token
that is no longer theirs (as tests/integration/jobs/test_job_worker_loop.py does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from otel_sdk import value
from pydantic import BaseModel
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext, JobStatus
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher
from cqrs_ddd_persistence_sqlalchemy.scheduling import SchedulerWorker, SQLAlchemyCommandScheduler
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table

pytestmark = pytest.mark.usefixtures("library_tables", "meters")


def _count(name: str, component: str) -> float:
    return value(name, component=component) or 0.0


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.01)


class Remind(BaseModel):
    n: int


async def test_scheduler_counts_a_refused_ack_after_a_takeover(engine: AsyncEngine) -> None:
    slow = SQLAlchemyCommandScheduler(engine, lease_seconds=0.3)
    other = SQLAlchemyCommandScheduler(engine, lease_seconds=30)
    await slow.schedule(Remind(n=1))
    taken_over: list[Any] = []

    async def dispatch(command: Remind) -> None:
        await asyncio.sleep(0.4)  # dispatching outlasts the lease...
        taken_over.extend(await other.claim(10))  # ...and another scheduler takes it

    refused = _count("cqrs.lease.fencing_refusals", "scheduler")
    assert await SchedulerWorker(slow, dispatch, [Remind]).run_once() == 1
    assert len(taken_over) == 1
    assert _count("cqrs.lease.fencing_refusals", "scheduler") == refused + 1
    assert (await other.complete(taken_over)).done == (taken_over[0].id,)


async def test_outbox_relay_counts_its_lost_lease_and_refused_settle(engine: AsyncEngine) -> None:
    outbox = SQLAlchemyOutboxStorage(engine, lease_seconds=0.3)  # heartbeats every 0.1 s
    await outbox.save_messages([OutboxMessage(event_type="A")])
    losses = _count("cqrs.lease.losses", "outbox")
    refused = _count("cqrs.lease.fencing_refusals", "outbox")

    async def taken_over_while_publishing(message: OutboxMessage) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                update(outbox_table)
                .where(outbox_table.c.message_id == message.message_id)
                .values(lease_token="another-relay")
            )
        # The relay's next heartbeat finds the lease gone.
        await _until(lambda: _count("cqrs.lease.losses", "outbox") == losses + 1, "heartbeat loss")

    relay = OutboxRelay(
        outbox, InMemoryPublisher(on_publish=taken_over_while_publishing), listen=False
    )
    await relay.run_once()
    # The broker confirmed, but the settle is refused: the message is the other relay's.
    assert relay.metrics.lost == 1
    assert _count("cqrs.lease.losses", "outbox") == losses + 1
    assert _count("cqrs.lease.fencing_refusals", "outbox") == refused + 1


class Waits(BackgroundJob):
    async def execute(self, ctx: JobContext) -> Any:
        return None


async def test_job_worker_counts_a_lease_lost_while_running(engine: AsyncEngine) -> None:
    jobs = SQLAlchemyBackgroundJobRepository(BackgroundJob, engine, lease_seconds=5)
    started = asyncio.Event()

    async def handler(job: Waits, ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)  # stopped by the heartbeat that finds the lease lost

    job_id = await jobs.enqueue(Waits())
    losses = _count("cqrs.lease.losses", "jobs")
    worker = JobWorker(jobs, handlers={Waits: handler}, heartbeat_interval=0.05, poll_interval=0.01)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        async with engine.begin() as conn:
            await conn.execute(
                update(jobs_table)
                .where(jobs_table.c.job_id == job_id)
                .values(lease_token="another-worker")
            )
        await _until(lambda: worker.processed == 1, "the job stopped")
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 10)
    assert _count("cqrs.lease.losses", "jobs") == losses + 1
    job: Any = await jobs.get(job_id)
    assert job.status is JobStatus.RUNNING  # the other worker's: nothing written
