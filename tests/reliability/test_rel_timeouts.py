"""Lock and statement timeouts: a stuck transaction elsewhere never hangs the library.

``create_engine(statement_timeout_ms=, lock_timeout_ms=)`` bound every wait; the waits end in
``LockTimeoutError`` (retryable) / ``StatementTimeoutError`` from the error tree, and the engine
keeps working afterwards.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.reliability.rel_faults import admin_connect, app_name, tagged_engine

from cqrs_ddd_core.errors import (
    CQRSDDDError,
    LockTimeoutError,
    StatementTimeoutError,
)
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.binding import Binding as SessionSource
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork

md = sa.MetaData()
counters = sa.Table(
    "rel_counters",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)


class CounterStore:
    def __init__(self) -> None:
        self._source = SessionSource()

    async def bump(self, row_id: int, *, uow: Any = None) -> None:
        async with self._source.session(uow) as session:
            await session.execute(
                sa.update(counters).where(counters.c.id == row_id).values(n=counters.c.n + 1)
            )

    async def sleep(self, seconds: float, *, uow: Any = None) -> None:
        async with self._source.session(uow) as session:
            await session.execute(sa.select(sa.func.pg_sleep(seconds)))

    async def value(self, row_id: int, *, uow: Any = None) -> int:
        async with self._source.session(uow) as session:
            return int(
                (
                    await session.execute(sa.select(counters.c.n).where(counters.c.id == row_id))
                ).scalar_one()
            )


async def _setup(eng: AsyncEngine) -> None:
    async with eng.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(sa.insert(counters), [{"id": 1, "n": 0}, {"id": 2, "n": 0}])


@pytest.fixture
async def pg(pg_schema: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    eng = tagged_engine(pg_schema, app_name("rel-timeout"), lock_timeout_ms=300,
                        statement_timeout_ms=1500)  # fmt: skip
    await _setup(eng)
    try:
        yield eng, pg_schema
    finally:
        await eng.dispose()


async def test_rel_row_lock_held_elsewhere_gives_lock_timeout(
    pg: tuple[AsyncEngine, str],
) -> None:
    eng, schema = pg
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = CounterStore()
    blocker = await admin_connect()
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(f'UPDATE "{schema}".rel_counters SET n = n + 100 WHERE id = 1')
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            async with SQLAlchemyUnitOfWork(factory) as uow:
                await store.bump(1, uow=uow)
                await uow.commit()
        assert time.monotonic() - started < 5  # 300 ms lock timeout, generous for a busy box
        assert info.value.retryable and info.value.sqlstate == "55P03"
        # Other rows are not blocked: the same engine keeps working meanwhile.
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await store.bump(2, uow=uow)
            await uow.commit()
        await tx.rollback()
    finally:
        await blocker.close()
    # Once the blocker is gone the retried operation succeeds.
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await store.bump(1, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert await store.value(1, uow=uow) == 1
        assert await store.value(2, uow=uow) == 1


async def test_rel_table_lock_held_elsewhere_gives_lock_timeout(
    pg: tuple[AsyncEngine, str],
) -> None:
    """Even a read waits at most lock_timeout behind an ACCESS EXCLUSIVE lock (e.g. a migration)."""
    eng, schema = pg
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = CounterStore()
    blocker = await admin_connect()
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(f'LOCK TABLE "{schema}".rel_counters IN ACCESS EXCLUSIVE MODE')
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(LockTimeoutError):
                async with SQLAlchemyUnitOfWork(factory) as uow:
                    await store.value(1, uow=uow)
            assert time.monotonic() - started < 5  # 300 ms lock timeout, generous for a busy box
        await tx.rollback()
    finally:
        await blocker.close()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert await store.value(1, uow=uow) == 0


async def test_rel_statement_timeout(pg: tuple[AsyncEngine, str]) -> None:
    eng, _ = pg
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = CounterStore()
    started = time.monotonic()
    with pytest.raises(StatementTimeoutError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await store.bump(1, uow=uow)
            await store.sleep(30, uow=uow)
            await uow.commit()
    assert 1.0 < time.monotonic() - started < 10
    assert info.value.sqlstate == "57014"
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert await store.value(1, uow=uow) == 0  # the bump was rolled back
        await store.sleep(0.1, uow=uow)  # short statements still run


async def test_rel_timeouts_are_per_engine(pg_schema: str) -> None:
    """Without timeouts the server defaults apply; with them the session settings say so."""
    plain = tagged_engine(pg_schema, app_name("rel-plain"))
    tight = tagged_engine(pg_schema, app_name("rel-tight"), lock_timeout_ms=250,
                          statement_timeout_ms=4321)  # fmt: skip
    try:
        async with plain.connect() as conn:
            assert (await conn.execute(sa.text("SHOW lock_timeout"))).scalar_one() == "0"
        async with tight.connect() as conn:
            assert (await conn.execute(sa.text("SHOW lock_timeout"))).scalar_one() == "250ms"
            statement = (await conn.execute(sa.text("SHOW statement_timeout"))).scalar_one()
            assert statement == "4321ms"
    finally:
        await plain.dispose()
        await tight.dispose()


# -- SQLite: the busy timeout is the lock timeout ------------------------------------------------


async def _sqlite_blocked_write(eng: AsyncEngine, path: Path) -> float:
    """Hold SQLite's write lock from another connection and time a library write."""
    async with eng.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(sa.insert(counters), [{"id": 1, "n": 0}])
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = CounterStore()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("UPDATE rel_counters SET n = 100 WHERE id = 1")
        started = time.monotonic()
        with pytest.raises(CQRSDDDError) as info:
            async with SQLAlchemyUnitOfWork(factory) as uow:
                await store.bump(1, uow=uow)
                await uow.commit()
        elapsed = time.monotonic() - started
        assert isinstance(info.value, LockTimeoutError), repr(info.value)
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await store.bump(1, uow=uow)
        await uow.commit()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert await store.value(1, uow=uow) == 1
    return elapsed


async def test_rel_sqlite_lock_timeout_is_configurable(tmp_path: Path) -> None:
    """``create_engine(..., lock_timeout_ms=)`` bounds the wait for SQLite's write lock too."""
    path = tmp_path / "locks.db"
    eng = create_engine(f"sqlite+aiosqlite:///{path}", lock_timeout_ms=300)
    try:
        elapsed = await asyncio.wait_for(_sqlite_blocked_write(eng, path), 20)
    finally:
        await eng.dispose()
    assert elapsed < 5  # 300 ms busy timeout vs the 30 s default
