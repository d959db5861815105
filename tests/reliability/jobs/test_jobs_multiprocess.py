"""Jobs processed by worker processes: exactly once in a clean run; a killed worker's jobs are
recovered after the lease. Sized for CI; ``CQRS_SOAK=1`` runs the 10,000-job version."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from jobs_mp_models import effects_metadata, job_effects
from jobs_test_models import EffectJob
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.jobs import JobStatus
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyBackgroundJobRepository

SOAK = os.environ.get("CQRS_SOAK") == "1"
WORKER = Path(__file__).parent / "jobs_mp_worker.py"
ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


def target_of(engine: AsyncEngine) -> str:
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            schema = module.schema_of(engine)
            return f"pg:{schema}" if schema else str(engine.url.database)
    raise RuntimeError("tests/conftest.py is not loaded")


async def _setup(engine: AsyncEngine, total: int) -> SQLAlchemyBackgroundJobRepository[EffectJob]:
    async with engine.begin() as conn:
        await conn.run_sync(effects_metadata.create_all)
    repo = SQLAlchemyBackgroundJobRepository(EffectJob, engine)
    for start in range(0, total, 1000):
        await repo.enqueue_many(EffectJob(n=i) for i in range(start, min(total, start + 1000)))
    return repo


async def _spawn(
    target: str, name: str, die_after: int, lease: float
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), target, name, str(die_after), str(lease)
    )


async def _effects(engine: AsyncEngine) -> tuple[int, int, dict[str, int]]:
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(job_effects))).scalar_one()
        distinct = (
            await conn.execute(select(func.count(func.distinct(job_effects.c.n))))
        ).scalar_one()
        per_worker = {
            str(w): int(c)
            for w, c in (
                await conn.execute(
                    select(job_effects.c.worker, func.count()).group_by(job_effects.c.worker)
                )
            ).all()
        }
    return int(count), int(distinct), per_worker


async def test_each_job_completes_exactly_once(
    library_tables: AsyncEngine, dialect_name: str
) -> None:
    if dialect_name == "postgresql":
        total, n_workers = (10_000 if SOAK else 1_000), 4
    else:
        total, n_workers = (2_000 if SOAK else 300), 1
    engine = library_tables
    repo = await _setup(engine, total)
    target = target_of(engine)
    procs = [await _spawn(target, f"w{i}", 0, 30.0) for i in range(n_workers)]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 600)
    assert codes == [0] * n_workers
    count, distinct, per_worker = await _effects(engine)
    assert (count, distinct) == (total, total)
    if n_workers > 1:
        assert len(per_worker) > 1, per_worker
    counts = await repo.count_by_status()
    assert counts[JobStatus.COMPLETED] == total
    assert sum(counts.values()) == total


async def test_killed_workers_jobs_are_recovered_after_the_lease(
    library_tables: AsyncEngine, dialect_name: str
) -> None:
    total = 200 if dialect_name == "postgresql" else 100
    engine = library_tables
    repo = await _setup(engine, total)
    target = target_of(engine)
    lease = 2.0
    victim = await _spawn(target, "victim", 20, lease)
    assert await asyncio.wait_for(victim.wait(), 60) == -signal.SIGKILL
    jobs_t = repo.table
    async with engine.connect() as conn:
        stuck = (
            await conn.execute(
                select(func.count()).where(
                    jobs_t.c.status == "pending", jobs_t.c.lease_token.is_not(None)
                )
            )
        ).scalar_one()
    assert stuck >= 1  # the victim died holding leases
    n_workers = 2 if dialect_name == "postgresql" else 1
    procs = [await _spawn(target, f"s{i}", 0, lease) for i in range(n_workers)]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 300)
    # workers may go idle before the leases expire: run one more after the lease
    await asyncio.sleep(lease)
    late = await _spawn(target, "late", 0, lease)
    codes.append(await asyncio.wait_for(late.wait(), 300))
    assert codes == [0] * (n_workers + 1)
    counts = await repo.count_by_status()
    assert counts[JobStatus.COMPLETED] == total, counts
    count, distinct, _ = await _effects(engine)
    assert distinct == total
    assert count - distinct <= 4  # at most the victim's in-flight jobs ran twice
