"""Batched job writes and the worker's prefetch / concurrency split, on SQLite and PostgreSQL.

- ``enqueue_many`` is one statement (PostgreSQL: counted by a statement-level trigger, so the
  driver's fast path is observed too; SQLite: one ``executemany``), every row right; a bad job
  raises the library's error and nothing is stored; an empty batch does nothing.
- Jobs enqueued one by one in a unit of work are written together at commit (one statement),
  not at all on rollback, and before the repository's own reads in it.
- ``JobWorker``: never more than ``concurrency`` handlers at once, up to ``prefetch`` jobs
  claimed; ``stop()`` gives claimed jobs that have not started back at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobs_test_models import EchoJob, SlowJob
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext, JobStatus
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.advanced import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.jobs import jobs_table
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

Repo = SQLAlchemyBackgroundJobRepository[BackgroundJob]
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def jobs(library_tables: AsyncEngine) -> Repo:
    return SQLAlchemyBackgroundJobRepository(BackgroundJob, library_tables, lease_seconds=5)


@pytest.fixture
async def inserts(library_tables: AsyncEngine) -> AsyncIterator[Callable[[], Any]]:
    """``await inserts()``: INSERT statements run on the jobs table so far.

    PostgreSQL: a statement-level trigger counts them in the database (whatever path the
    statement took); SQLite: the cursor executions SQLAlchemy made (an ``executemany`` is one).
    """
    engine = library_tables
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE insert_count (n int NOT NULL)"))
            await conn.execute(text("INSERT INTO insert_count VALUES (0)"))
            await conn.execute(
                text(
                    "CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN UPDATE insert_count SET n = n + 1; RETURN NULL; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER count_insert AFTER INSERT ON cqrs_background_jobs "
                    "FOR EACH STATEMENT EXECUTE FUNCTION count_insert()"
                )
            )

        async def counted() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT n FROM insert_count"))).scalar_one())

        yield counted
        return
    seen = [0]

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CQRS_BACKGROUND_JOBS"):
            seen[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", record)

    async def recorded() -> int:
        return seen[0]

    try:
        yield recorded
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _rows(engine: AsyncEngine) -> list[Any]:
    t = jobs_table
    async with engine.connect() as conn:
        result = await conn.execute(select(t).order_by(t.c.id))
        return list(result.mappings())


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(jobs_table))).scalar_one())


# -- enqueue_many ---------------------------------------------------------------------------
async def test_enqueue_many_is_one_statement_with_every_row_right(
    jobs: Repo, library_tables: AsyncEngine, inserts: Callable[[], Any]
) -> None:
    later = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    batch = [
        EchoJob(text=f"t{i}", priority=i % 3, max_attempts=2 + i, run_at=later if i == 4 else None)
        for i in range(7)
    ]
    assert await jobs.enqueue_many(batch) == 7
    assert await inserts() == 1
    rows = await _rows(library_tables)
    assert [r["job_id"] for r in rows] == [j.id for j in batch]  # claim order = given order
    for row, job in zip(rows, batch, strict=True):
        assert row["job_type"] == "EchoJob"
        assert row["payload"] == {"text": job.text}
        assert row["priority"] == job.priority
        assert row["max_attempts"] == job.max_attempts
        assert row["status"] == "pending" and row["attempts"] == 0
        assert row["lease_token"] is None and row["dedupe_key"] is None
        assert row["available_at"].tzinfo is not None
    assert rows[4]["available_at"] == later
    loaded = await jobs.get(batch[0].id)
    assert isinstance(loaded, EchoJob) and loaded.text == "t0"
    assert loaded.status is JobStatus.PENDING


async def test_enqueue_many_skips_stored_dedupe_keys(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    first = await jobs.enqueue(EchoJob(text="a"), dedupe_key="k1")
    batch = [EchoJob(text="b", dedupe_key="k1"), EchoJob(text="c", dedupe_key="k2"), EchoJob()]
    assert await jobs.enqueue_many(batch) == 3
    rows = await _rows(library_tables)
    assert [r["job_id"] for r in rows] == [first, batch[1].id, batch[2].id]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: EchoJob.model_construct(text="x", max_attempts=0), id="max_attempts"),
        pytest.param(lambda: EchoJob(text="x", run_at=datetime(2030, 1, 1)), id="naive-run_at"),
        pytest.param(lambda: {"text": "not a job"}, id="not-a-job"),
    ],
)
async def test_a_bad_job_in_a_batch_raises_the_library_error_and_stores_nothing(
    jobs: Repo, library_tables: AsyncEngine, bad: Callable[[], Any]
) -> None:
    batch: list[Any] = [EchoJob(text="ok"), bad(), EchoJob(text="ok too")]
    with pytest.raises(ConfigurationError):
        await jobs.enqueue_many(batch)
    async with SQLAlchemyUnitOfWork(async_sessionmaker(library_tables)) as uow:
        with pytest.raises(ConfigurationError):
            await jobs.enqueue_many(batch, uow=uow)
        await uow.commit()
    assert await _count(library_tables) == 0


async def test_an_empty_batch_does_nothing(
    jobs: Repo, library_tables: AsyncEngine, inserts: Callable[[], Any]
) -> None:
    assert await jobs.enqueue_many([]) == 0
    assert await jobs.enqueue_many(iter(())) == 0
    assert await inserts() == 0
    assert await _count(library_tables) == 0


async def test_a_duplicate_job_id_in_a_batch_stores_none_of_it(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    from cqrs_ddd_core.errors import UniqueViolationError

    job = EchoJob(text="x")
    with pytest.raises(UniqueViolationError):
        await jobs.enqueue_many([EchoJob(text="y"), job, EchoJob.model_validate(job.model_dump())])
    assert await _count(library_tables) == 0


# -- jobs enqueued in a unit of work ----------------------------------------------------------
async def test_jobs_enqueued_in_a_unit_of_work_are_written_at_commit_in_one_statement(
    jobs: Repo, library_tables: AsyncEngine, session_factory: Factory, inserts: Callable[[], Any]
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        ids = [await jobs.enqueue(EchoJob(text=str(i)), uow=uow) for i in range(5)]
        ids.append(await jobs.enqueue(EchoJob(text="ambient")))  # the ambient unit of work
        await jobs.enqueue_many([EchoJob(text="m1"), EchoJob(text="m2")], uow=uow)
        assert await _count(library_tables) == 0  # nothing written before the commit
        await uow.commit()
    assert await inserts() == 1
    rows = await _rows(library_tables)
    assert [r["payload"]["text"] for r in rows] == ["0", "1", "2", "3", "4", "ambient", "m1", "m2"]
    assert [r["job_id"] for r in rows][:6] == ids


async def test_jobs_enqueued_in_a_rolled_back_unit_of_work_are_never_written(
    jobs: Repo, library_tables: AsyncEngine, session_factory: Factory
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await jobs.enqueue(EchoJob(text="dropped"), uow=uow)
        await uow.rollback()
        await jobs.enqueue(EchoJob(text="kept"), uow=uow)  # the unit of work goes on
        await uow.commit()
    with pytest.raises(RuntimeError):
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await jobs.enqueue(EchoJob(text="failed block"), uow=uow)
            raise RuntimeError("the block failed")
    assert [r["payload"]["text"] for r in await _rows(library_tables)] == ["kept"]


async def test_the_repository_reads_the_jobs_enqueued_in_its_unit_of_work(
    jobs: Repo, library_tables: AsyncEngine, session_factory: Factory
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        job_id = await jobs.enqueue(EchoJob(text="mine"), uow=uow)
        found = await jobs.get(job_id, uow=uow)
        assert found is not None and found.status is JobStatus.PENDING
        assert (await jobs.count_by_status(uow=uow))[JobStatus.PENDING] == 1
        await jobs.enqueue(EchoJob(text="second"), uow=uow)
        await jobs.flush(uow)  # visible to the caller's own statements now
        rows = await uow.session.execute(select(func.count()).select_from(jobs_table))
        assert rows.scalar_one() == 2
        await uow.rollback()
    assert await _count(library_tables) == 0


async def test_a_dedupe_key_in_a_unit_of_work_answers_at_once_and_keeps_the_order(
    jobs: Repo, library_tables: AsyncEngine, session_factory: Factory
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        first = await jobs.enqueue(EchoJob(text="1"), uow=uow)
        keyed = await jobs.enqueue(EchoJob(text="2"), uow=uow, dedupe_key="k")
        assert await jobs.enqueue(EchoJob(text="3"), uow=uow, dedupe_key="k") == keyed
        await uow.commit()
    rows = await _rows(library_tables)
    assert [r["job_id"] for r in rows] == [first, keyed]


# -- the worker: prefetch and concurrency -------------------------------------------------------
async def test_the_worker_runs_at_most_concurrency_handlers_and_claims_up_to_prefetch(
    jobs: Repo,
) -> None:
    await jobs.enqueue_many([EchoJob(text=str(i)) for i in range(40)])
    running = 0
    most = 0
    limits: list[int] = []
    claim = jobs.claim

    async def recording(limit: int = 1, **kw: Any) -> Any:
        limits.append(limit)
        return await claim(limit, **kw)

    jobs.claim = recording  # type: ignore[method-assign]

    async def handler(job: EchoJob, ctx: JobContext) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1
        return job.text

    worker = JobWorker(
        jobs, handlers={EchoJob: handler}, concurrency=3, prefetch=12, poll_interval=0.01
    )
    assert worker.concurrency == 3 and worker.prefetch == 12
    assert await worker.run_until_idle() == 40
    assert most == 3  # the cap, and reached
    assert limits[0] == 12 and max(limits) == 12
    assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 40


async def test_worker_defaults_prefetch_ahead_of_concurrency(jobs: Repo) -> None:
    worker = JobWorker(jobs)
    assert worker.concurrency == 10 and worker.prefetch == 40
    assert JobWorker(jobs, concurrency=2).prefetch == 8
    assert JobWorker(jobs, concurrency=8, prefetch=3).prefetch == 8  # never below concurrency


async def test_stop_gives_back_the_claimed_jobs_that_have_not_started_at_once(
    jobs: Repo, library_tables: AsyncEngine
) -> None:
    await jobs.enqueue_many([SlowJob(seconds=0.3) for _ in range(6)])
    started: list[str] = []

    async def slow(job: SlowJob, ctx: JobContext) -> str:
        started.append(job.id)
        await asyncio.sleep(job.seconds)
        return "done"

    worker = JobWorker(
        jobs, handlers={SlowJob: slow}, concurrency=2, prefetch=6, poll_interval=0.01
    )
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 20
    while len(started) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await worker.stop()
    await asyncio.wait_for(task, 20)
    rows = {r["job_id"]: r for r in await _rows(library_tables)}
    done = [i for i, r in rows.items() if r["status"] == "done"]
    back = [i for i, r in rows.items() if r["status"] == "pending"]
    assert sorted(done) == sorted(started)  # the running ones finished
    assert len(back) == 6 - len(started) >= 2
    for job_id in back:  # given back: no lease, no attempt counted, claimable now
        assert rows[job_id]["lease_token"] is None and rows[job_id]["attempts"] == 0
    assert len(await jobs.claim(10)) == len(back)


async def test_a_job_that_waited_past_its_lease_margin_is_extended_before_it_runs(
    library_tables: AsyncEngine,
) -> None:
    # A clock that jumps: the second job waits (for the one handler slot) until its lease
    # has almost run out; the worker extends it before starting it.
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    jobs: Repo = SQLAlchemyBackgroundJobRepository(
        BackgroundJob, library_tables, lease_seconds=60, clock=lambda: now[0]
    )
    await jobs.enqueue_many([EchoJob(text="first"), EchoJob(text="second")])

    async def handler(job: EchoJob, ctx: JobContext) -> str:
        if job.text == "first":
            now[0] += timedelta(seconds=50)  # the lease of "second" has 10 s left
        return job.text

    worker = JobWorker(jobs, handlers={EchoJob: handler}, concurrency=1, prefetch=2)
    beats: list[str] = []
    heartbeat = jobs.heartbeat

    async def recording(claimed: Any, **kw: Any) -> bool:
        beats.append(claimed.job.text)
        return await heartbeat(claimed, **kw)

    jobs.heartbeat = recording  # type: ignore[method-assign]
    assert await worker.run_until_idle() == 2
    assert beats == ["second"]
    assert (await jobs.count_by_status())[JobStatus.COMPLETED] == 2
