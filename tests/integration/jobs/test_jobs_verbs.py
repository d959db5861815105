"""The job repository speaks the durable queue's verbs; its earlier names still work, with a
DeprecationWarning (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobs_test_models import EchoJob
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobStatus
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository, jobs_table

Repo = SQLAlchemyBackgroundJobRepository[BackgroundJob]


@pytest.fixture
def jobs(library_tables: AsyncEngine) -> Repo:
    return SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables, lease_seconds=5)


async def _dead(jobs: Repo, n: int) -> list[str]:
    ids = [await jobs.enqueue(EchoJob(text=str(i))) for i in range(n)]
    for claimed in await jobs.claim(n):
        assert await jobs.fail(claimed, error="nope", retry=False) is JobStatus.DEAD
    return ids


async def test_requeue_without_ids_brings_back_every_dead_job(jobs: Repo) -> None:
    ids = await _dead(jobs, 3)
    assert sorted(j.id for j in await jobs.dead_letters()) == sorted(ids)
    assert await jobs.requeue() == 3
    assert await jobs.dead_letters() == []
    assert (await jobs.count_by_status())[JobStatus.PENDING] == 3


async def test_fail_with_a_delay_overrides_the_backoff(jobs: Repo) -> None:
    job_id = await jobs.enqueue(EchoJob())
    [claimed] = await jobs.claim()
    assert await jobs.fail(claimed, error="later", delay=3600) is JobStatus.PENDING
    assert await jobs.claim() == []  # not due for an hour
    stats = await jobs.stats()
    assert (stats.pending, stats.scheduled) == (1, 1)
    job = await jobs.get(job_id)
    assert job is not None and job.error == "later" and job.attempts == 1


async def test_release_returns_the_outcome_and_purge_takes_seconds(jobs: Repo) -> None:
    await jobs.enqueue(EchoJob())
    claimed = await jobs.claim()
    outcome = await jobs.release(claimed)
    assert outcome.released == (claimed[0].claim.id,) and outcome.lost == ()
    [again] = await jobs.claim()
    await jobs.complete(again, "ok")
    assert await jobs.purge(3600.0) == 0  # finished just now
    assert await jobs.purge(timedelta(seconds=-1)) == 1


async def test_stalled_counts_expired_leases(jobs: Repo, library_tables: AsyncEngine) -> None:
    assert await jobs.stalled() == (0, None)
    await jobs.enqueue(EchoJob())
    [claimed] = await jobs.claim()
    async with library_tables.begin() as conn:  # its worker died a minute ago
        await conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == claimed.claim.id)
            .values(locked_until=claimed.claim.locked_until - timedelta(minutes=2))
        )
    count, age = await jobs.stalled()
    assert count == 1 and age is not None and age > 60
    assert await jobs.recover_stalled() == 1
    assert await jobs.stalled() == (0, None)


async def test_dead_jobs_is_dead_letters_with_a_warning(jobs: Repo) -> None:
    ids = await _dead(jobs, 2)
    with pytest.warns(DeprecationWarning, match="dead_jobs is deprecated.*dead_letters"):
        dead = await jobs.dead_jobs()
    assert sorted(j.id for j in dead) == sorted(ids)


async def test_session_factory_keyword_is_bind_with_a_warning(
    library_tables: AsyncEngine,
) -> None:
    factory = async_sessionmaker(library_tables, expire_on_commit=False)
    with pytest.warns(DeprecationWarning, match=r"session_factory=.*use bind="):
        jobs = SQLAlchemyBackgroundJobRepository(EchoJob, session_factory=factory)
    job_id = await jobs.enqueue(EchoJob(text="sf"))
    [claimed] = await jobs.claim()
    await jobs.complete(claimed, "done")
    job = await jobs.get(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED


def test_bind_and_session_factory_together_are_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(ConfigurationError, match="pass bind= only"):
        SQLAlchemyBackgroundJobRepository(EchoJob, session_factory, session_factory=session_factory)
