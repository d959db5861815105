"""Optimistic concurrency under real contention: 20 writers, one counter.

On PostgreSQL the writers overlap and the losers get ``OptimisticConcurrencyError``; on SQLite
(``BEGIN IMMEDIATE``) they are serialised by the write lock and never conflict.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from repo_models import Counter, CounterModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy import OptimisticConcurrencyError as ReExported
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork


async def test_twenty_incrementers_end_at_twenty(repo_engine: AsyncEngine) -> None:
    assert ReExported is OptimisticConcurrencyError
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="c"), uow=uow)
        await uow.commit()
    start = asyncio.Event()
    conflicts: list[BaseException] = []

    async def increment() -> int:
        await start.wait()
        attempts = 0
        while True:
            attempts += 1
            try:
                async with SQLAlchemyUnitOfWork(factory) as uow:
                    counter = await repo.get("c", uow=uow)
                    assert counter is not None
                    await asyncio.sleep(0)  # let the others load the same version
                    counter.value += 1
                    await repo.add(counter, uow=uow)
                    await uow.commit()
                return attempts
            except OptimisticConcurrencyError as exc:
                conflicts.append(exc)

    tasks = [asyncio.create_task(increment()) for _ in range(20)]
    await asyncio.sleep(0.05)
    start.set()
    attempts = await asyncio.wait_for(asyncio.gather(*tasks), 120)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        final = await repo.get("c", uow=uow)
    assert final is not None and final.value == 20 and final.version == 21
    print(f"{len(conflicts)} conflicts over {sum(attempts)} attempts")
    assert sum(attempts) - 20 == len(conflicts)
    if repo_engine.dialect.name == "postgresql":
        assert conflicts, "the writers never collided: the test did not exercise anything"
    else:
        assert not conflicts  # one writer at a time


@pytest.mark.postgres_only
async def test_reload_and_retry_in_the_same_unit_of_work(repo_engine: AsyncEngine) -> None:
    """The seed's Optimistic Concurrency flow with the two transactions really overlapping."""
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="k"), uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as slow:
        stale = await repo.get("k", uow=slow)
        assert stale is not None and stale.version == 1
        async with SQLAlchemyUnitOfWork(factory) as fast:  # commits in between
            fresh = await repo.get("k", uow=fast)
            assert fresh is not None
            fresh.value = 10
            await repo.add(fresh, uow=fast)
            await fast.commit()
        stale.value = 99
        with pytest.raises(OptimisticConcurrencyError) as info:
            await repo.add(stale, uow=slow)
        assert info.value.expected_version == 1 and info.value.actual_version == 2
        assert stale.version == 1
        again = await repo.get("k", uow=slow)
        assert again is not None and again.version == 2 and again.value == 10
        again.value += 1
        await repo.add(again, uow=slow)
        await slow.commit()
    assert again.version == 3
    async with SQLAlchemyUnitOfWork(factory) as uow:
        final = await repo.get("k", uow=uow)
    assert final is not None and final.value == 11


@pytest.mark.postgres_only
@pytest.mark.skipif(os.environ.get("CQRS_SOAK") != "1", reason="soak-sized: CQRS_SOAK=1")
async def test_soak_many_writers_many_rounds(repo_engine: AsyncEngine) -> None:
    """50 writers x 20 increments each on 3 counters; every conflict is an OCC error."""
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Counter, CounterModel)
    ids = ["a", "b", "c"]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for counter_id in ids:
            await repo.add(Counter(id=counter_id), uow=uow)
        await uow.commit()

    async def writer(n: int) -> int:
        conflicts = 0
        for round_ in range(20):
            target = ids[(n + round_) % len(ids)]
            while True:
                try:
                    async with SQLAlchemyUnitOfWork(factory) as uow:
                        counter = await repo.get(target, uow=uow)
                        assert counter is not None
                        counter.value += 1
                        await repo.add(counter, uow=uow)
                        await uow.commit()
                    break
                except OptimisticConcurrencyError:
                    conflicts += 1
        return conflicts

    conflicts = await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(50))), 600)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        totals = [(await repo.get(i, uow=uow)) for i in ids]
    assert sum(c.value for c in totals if c) == 50 * 20
    assert all(c is not None and c.version == c.value + 1 for c in totals)
    print(f"soak: {sum(conflicts)} conflicts")
