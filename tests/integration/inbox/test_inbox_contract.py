"""SQLAlchemyInbox passes the core inbox contract on SQLite and PostgreSQL; its SQL specifics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.ports import IInbox
from cqrs_ddd_core.testing import InboxContract, InboxHarness, ManualClock
from cqrs_ddd_persistence_sqlalchemy import metadata
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyInbox,
    SQLAlchemyUnitOfWork,
    inbox_table,
)


class TestSQLAlchemyInbox(InboxContract):
    @pytest.fixture
    def harness(
        self,
        library_tables: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> InboxHarness:
        clock = ManualClock()
        return InboxHarness(
            SQLAlchemyInbox(library_tables, clock=clock),
            lambda: SQLAlchemyUnitOfWork(session_factory),
            clock,
        )


def test_inbox_sql_satisfies_the_port_and_is_on_the_library_metadata() -> None:
    assert isinstance(SQLAlchemyInbox(), IInbox)
    assert metadata.tables["cqrs_inbox"] is inbox_table


async def test_inbox_sql_effects_and_record_commit_or_roll_back_together(
    library_tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    effects = Table("inbox_effects", MetaData(), Column("n", Integer), Column("m", String(50)))
    async with library_tables.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)
    inbox = SQLAlchemyInbox()  # no bind: record() joins the unit of work

    async def handle(mid: str, *, fail: bool) -> bool:
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            if not await inbox.record("c", mid, uow=uow):
                return False
            await uow.session.execute(insert(effects).values(n=1, m=mid))
            if fail:
                raise RuntimeError("handler failed")
            await uow.commit()
        return True

    with pytest.raises(RuntimeError):
        await handle("m-1", fail=True)
    assert await handle("m-1", fail=False) is True
    assert await handle("m-1", fail=False) is False
    async with library_tables.connect() as conn:
        assert (await conn.execute(select(effects.c.m))).scalars().all() == ["m-1"]


async def test_inbox_sql_record_joins_a_borrowed_session(
    library_tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session, session.begin():
        inbox = SQLAlchemyInbox(session)
        assert await inbox.record("c", "m-1") is True
        assert await inbox.record("c", "m-1") is False
    assert await SQLAlchemyInbox(library_tables).has_seen("c", "m-1") is True


async def test_inbox_sql_purge_in_own_transaction(library_tables: AsyncEngine) -> None:
    clock = ManualClock()
    inbox = SQLAlchemyInbox(library_tables, clock=clock)
    sf = async_sessionmaker(library_tables, expire_on_commit=False)
    for i in range(3):
        async with SQLAlchemyUnitOfWork(sf) as uow:
            await inbox.record("c", f"m-{i}", uow=uow)
            await uow.commit()
        clock.advance(timedelta(hours=1))
    # handled at t, t+1h, t+2h; now t+3h: older than 90 minutes are the first two
    assert await inbox.purge(timedelta(minutes=90)) == 2
    assert [await inbox.has_seen("c", f"m-{i}") for i in range(3)] == [False, False, True]
