"""Saga recovery has a real attempt limit and the queue's administrative verbs; the earlier
forms (``run(poll_interval=)``, ``session_factory=``, ``repo.source``) still work, with a
DeprecationWarning (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from saga_test_models import Recorder, ThreeStepSaga
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import Backoff
from cqrs_ddd_advanced_core.sagas import SagaOrchestrator, SagaStatus
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.sagas import (
    SagaRecoveryWorker,
    SQLAlchemySagaRepository,
    sagas_table,
)

Repo = SQLAlchemySagaRepository[ThreeStepSaga]
QUICK = Backoff(base=0.01, factor=1.0, maximum=0.01)


class BrokenOrchestrator(SagaOrchestrator[Any]):
    """Its recoveries always fail (e.g. a step's dependency cannot be built)."""

    async def resume(self, saga: Any) -> Any:
        raise RuntimeError("cannot resume")


@pytest.fixture
def repo(library_tables: AsyncEngine) -> Repo:
    return SQLAlchemySagaRepository(ThreeStepSaga, library_tables)


async def _stalled(repo: Repo, engine: AsyncEngine, rec: Recorder) -> ThreeStepSaga:
    saga = ThreeStepSaga()
    saga.start()
    await saga.one(rec)
    await repo.add(saga)  # the process "dies" here
    async with engine.begin() as conn:  # ... long enough ago
        await conn.execute(
            update(sagas_table)
            .where(sagas_table.c.saga_id == saga.id)
            .values(available_at=sagas_table.c.created_at)
        )
    return saga


async def _attempts(engine: AsyncEngine, saga_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(sagas_table.c.attempts).where(sagas_table.c.saga_id == saga_id)
                )
            ).scalar_one()
        )


async def test_a_saga_whose_recovery_keeps_failing_is_dead_lettered_then_requeued(
    repo: Repo, library_tables: AsyncEngine
) -> None:
    rec = Recorder()
    saga = await _stalled(repo, library_tables, rec)
    broken = SagaRecoveryWorker(
        [BrokenOrchestrator(repo, args=(rec,))], library_tables, max_attempts=2, backoff=QUICK
    )
    assert await broken.run_once() == 1  # first failure: retried after the backoff
    assert await broken.dead_letters() == []
    await asyncio.sleep(0.05)
    assert await broken.run_once() == 1  # second failure: its last attempt
    await asyncio.sleep(0.05)
    assert await broken.run_once() == 0  # dead: no longer claimed
    assert [s.id for s in await broken.dead_letters()] == [saga.id]
    assert (await broken.stats()).dead == 1

    fixed = SagaRecoveryWorker([SagaOrchestrator(repo, args=(rec,))], library_tables)
    assert await fixed.requeue([saga.id]) == 1
    assert await fixed.run_once() == 1
    done = await repo.get(saga.id)
    assert done is not None and done.status is SagaStatus.COMPLETED
    assert rec.items == ["one", "two", "three"]


async def test_a_save_resets_the_failed_recovery_attempts(
    repo: Repo, library_tables: AsyncEngine
) -> None:
    rec = Recorder()
    saga = await _stalled(repo, library_tables, rec)
    broken = SagaRecoveryWorker(
        [BrokenOrchestrator(repo, args=(rec,))], library_tables, max_attempts=2, backoff=QUICK
    )
    assert await broken.run_once() == 1
    assert await _attempts(library_tables, saga.id) == 1
    loaded = await repo.get(saga.id)
    assert loaded is not None
    await repo.add(loaded)  # the saga moved on (e.g. an event arrived)
    assert await _attempts(library_tables, saga.id) == 0


async def test_requeue_without_ids_takes_only_this_workers_saga_types(
    repo: Repo, library_tables: AsyncEngine
) -> None:
    rec = Recorder()
    await _stalled(repo, library_tables, rec)
    broken = SagaRecoveryWorker(
        [BrokenOrchestrator(repo, args=(rec,))], library_tables, max_attempts=1, backoff=QUICK
    )
    assert await broken.run_once() == 1
    async with library_tables.begin() as conn:  # a dead saga of another type
        await conn.execute(
            update(sagas_table)
            .where(sagas_table.c.saga_type == repo.saga_type)
            .values(saga_type="Other")
        )
    assert await broken.dead_letters() == []
    assert await broken.requeue() == 0
    assert (await broken.stats()).dead == 1


async def test_run_with_poll_interval_warns_and_stops(
    repo: Repo, library_tables: AsyncEngine
) -> None:
    worker = SagaRecoveryWorker([SagaOrchestrator(repo)], library_tables)
    task = asyncio.create_task(worker.run(poll_interval=3600))
    with pytest.warns(DeprecationWarning, match=r"run\(poll_interval=...\) is deprecated"):
        await asyncio.sleep(0.2)  # the task starts (and warns), then sleeps: nothing is due
    assert worker.poll_interval == 3600 and worker.is_running
    await asyncio.wait_for(worker.stop(), 10)
    assert task.done() and task.exception() is None


async def test_session_factory_keyword_and_source_attribute_warn(
    library_tables: AsyncEngine,
) -> None:
    factory = async_sessionmaker(library_tables, expire_on_commit=False)
    with pytest.warns(DeprecationWarning, match=r"session_factory=.*use bind="):
        repo = SQLAlchemySagaRepository(ThreeStepSaga, session_factory=factory)
    saga = ThreeStepSaga()
    await repo.add(saga)
    assert (await repo.get(saga.id)) is not None
    with pytest.warns(DeprecationWarning, match="source is deprecated.*binding"):
        source = repo.source
    assert isinstance(source, Binding) and source is repo.binding


def test_bind_and_session_factory_together_are_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(ConfigurationError, match="pass bind= only"):
        SQLAlchemySagaRepository(ThreeStepSaga, session_factory, session_factory=session_factory)


def test_recovery_needs_sql_saga_repositories(library_tables: AsyncEngine) -> None:
    class Elsewhere:
        async def add(self, saga: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="SQLAlchemySagaRepository"):
        SagaRecoveryWorker([SagaOrchestrator(Elsewhere())], library_tables)  # type: ignore[arg-type]
