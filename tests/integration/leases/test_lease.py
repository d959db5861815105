"""``Lease``: acquire, renew, release, expiry and takeover, and the fence, on SQLite and
PostgreSQL (the same body), with the database's clock only."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError, LeaseLostError
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.advanced import Lease
from cqrs_ddd_persistence_sqlalchemy.tables import leases_table

Factory = async_sessionmaker[AsyncSession]

#: A table the tests write in as the lease holder.
_notes = sa.Table("lease_notes", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))


async def acquire_within(lease: Lease, seconds: float) -> None:
    """Poll ``lease.acquire()`` until it succeeds (it frees itself at expiry)."""
    deadline = time.monotonic() + seconds
    while not await lease.acquire():
        assert time.monotonic() < deadline, f"{lease!r} not free after {seconds}s"
        await asyncio.sleep(0.05)


async def lease_row(engine: AsyncEngine, name: str) -> dict[str, object]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(leases_table).where(leases_table.c.name == name))).one()
    return dict(row._mapping)


async def test_one_holder_at_a_time_and_release_frees_at_once(library_tables: AsyncEngine) -> None:
    a = Lease(library_tables, "role", duration=30)
    b = Lease(library_tables, "role", duration=30)
    assert await a.acquire()
    assert a.held and a.token == 1
    assert not await b.acquire()
    assert b.token is None and not b.held
    holder = await b.holder()
    assert holder is not None and holder["owner"] == a.owner and holder["token"] == 1
    assert await a.acquire()  # held: renews, same token
    assert a.token == 1
    await a.release()
    assert a.token is None and not a.held
    assert await b.acquire()  # released: free at once, with the next token
    assert b.token == 2
    assert not await a.acquire()
    await b.release()
    await b.release()  # twice: nothing
    assert (await lease_row(library_tables, "role"))["token"] == 2


async def test_renewal_keeps_it_and_expiry_frees_it(library_tables: AsyncEngine) -> None:
    a = Lease(library_tables, "role", duration=1.5, renew_interval=0.1)
    b = Lease(library_tables, "role", duration=1.5)
    assert await a.acquire()
    first = (await lease_row(library_tables, "role"))["expires_at"]
    for _ in range(20):  # 2 s of renewals: longer than the duration
        await asyncio.sleep(0.1)
        assert await a.keep()
        assert not await b.acquire()
    assert (await lease_row(library_tables, "role"))["expires_at"] > first  # type: ignore[operator]
    # a holder that stops renewing (a dead process) loses it at expiry
    await acquire_within(b, 10)
    assert b.token == 2
    assert not await a.renew()
    assert a.token is None
    assert not await a.keep()
    await b.release()


async def test_hostile_names_are_data(library_tables: AsyncEngine) -> None:
    names = ["x'; DROP TABLE cqrs_leases; --", 'quote"', "ä" * 200, "projection:orders"]
    leases = [Lease(library_tables, n, owner=n) for n in names]
    for lease in leases:
        assert await lease.acquire() and lease.token == 1
    for lease in leases:
        row = await lease.holder()
        assert row is not None
        assert (row["name"], row["owner"], row["token"]) == (lease.name, lease.name, 1)
        await lease.release()


async def test_two_leases_of_different_names_do_not_contend(library_tables: AsyncEngine) -> None:
    a = Lease(library_tables, "one")
    b = Lease(library_tables, "two")
    assert await a.acquire() and await b.acquire()
    assert a.token == b.token == 1
    await a.release()
    await b.release()


async def test_a_stale_holders_transaction_is_refused_and_changes_nothing(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    async with library_tables.begin() as conn:
        await conn.run_sync(_notes.create)
    a = Lease(library_tables, "writer", duration=0.3, renew_interval=0.1)
    b = Lease(library_tables, "writer", duration=30)
    assert await a.acquire()
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await a.fence(uow)
        await uow.session.execute(_notes.insert().values(n=1))
        await uow.commit()
    await acquire_within(b, 10)  # a's lease expired without renewal: b took over (token 2)
    with pytest.raises(LeaseLostError):
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await uow.session.execute(_notes.insert().values(n=2))
            await a.fence(uow)
            await uow.commit()
    assert a.token is None
    with pytest.raises(LeaseLostError):  # and it stays refused
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await a.fence(uow)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await b.fence(uow)
        await uow.session.execute(_notes.insert().values(n=3))
        await uow.commit()
    async with library_tables.connect() as conn:
        assert (await conn.execute(sa.select(_notes.c.n).order_by(_notes.c.n))).scalars().all() == [
            1,
            3,
        ]
    row = await lease_row(library_tables, "writer")
    assert row["owner"] == b.owner and row["token"] == 2
    await b.release()


async def test_an_expired_lease_not_taken_over_still_fences_its_holder_in(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    """Nobody else wrote since: the holder's token is still the current one, so its
    transaction goes through (and renews the lease)."""
    a = Lease(library_tables, "quiet", duration=0.2, renew_interval=0.1)
    assert await a.acquire()
    await asyncio.sleep(0.3)
    assert not a.held
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await a.fence(uow)
        await uow.commit()
    assert a.held and a.token == 1
    await a.release()


async def test_bad_settings_are_refused(library_tables: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError):
        Lease(library_tables, "")
    with pytest.raises(ConfigurationError):
        Lease(library_tables, "x" * 201)
    with pytest.raises(ConfigurationError):
        Lease(library_tables, 5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Lease(library_tables, "x", owner="o" * 201)
    with pytest.raises(ConfigurationError):
        Lease(library_tables, "x", duration=0)
    with pytest.raises(ConfigurationError):
        Lease(library_tables, "x", duration=5, renew_interval=5)
