"""The unit of work runs the library's stores on its connection and creates an ORM session only
on demand, joined to that connection: the caller's own ORM writes and the stores' statements
are one transaction — committed together, rolled back together — whichever comes first."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core import StoredEvent
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.tables import events_table, outbox_table

SF = async_sessionmaker[AsyncSession]


class MixBase(DeclarativeBase):
    pass


class MixNote(MixBase):
    __tablename__ = "mix_notes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)


@pytest.fixture
async def tables(library_tables: AsyncEngine) -> AsyncEngine:
    async with library_tables.begin() as conn:
        await conn.run_sync(MixBase.metadata.create_all)
    return library_tables


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        notes = (await conn.execute(select(func.count()).select_from(MixNote))).scalar_one()
        events = (await conn.execute(select(func.count()).select_from(events_table))).scalar_one()
        messages = (await conn.execute(select(func.count()).select_from(outbox_table))).scalar_one()
    return int(notes), int(events), int(messages)


def event(stream: str) -> StoredEvent:
    return StoredEvent(event_type="Noted", aggregate_id=stream, payload={"s": stream})


@pytest.mark.parametrize("orm_first", [True, False], ids=["orm-first", "stores-first"])
async def test_orm_writes_and_store_writes_commit_together(
    tables: AsyncEngine, session_factory: SF, orm_first: bool
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    outbox = SQLAlchemyOutboxStorage(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        if orm_first:
            uow.session.add(MixNote(id="n1"))
            await uow.session.flush()
        await store.append(event("s1"))
        await outbox.save_messages([OutboxMessage(event_type="Noted")])
        if not orm_first:
            uow.session.add(MixNote(id="n1"))
        # Both halves see each other: one connection, one transaction.
        seen = await uow.session.execute(select(func.count()).select_from(events_table))
        assert seen.scalar_one() == 1
        await uow.commit()
    assert await counts(tables) == (1, 1, 1)


@pytest.mark.parametrize("orm_first", [True, False], ids=["orm-first", "stores-first"])
async def test_orm_writes_and_store_writes_roll_back_together(
    tables: AsyncEngine, session_factory: SF, orm_first: bool
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    outbox = SQLAlchemyOutboxStorage(session_factory)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            if orm_first:
                uow.session.add(MixNote(id="n1"))
                await uow.session.flush()
            await store.append(event("s1"))
            await outbox.save_messages([OutboxMessage(event_type="Noted")])
            if not orm_first:
                uow.session.add(MixNote(id="n2"))
                await uow.flush()
            raise Boom
    assert await counts(tables) == (0, 0, 0)


async def test_seed_style_store_on_uow_session_joins_the_same_transaction(
    tables: AsyncEngine, session_factory: SF
) -> None:
    """The seed builds the store per call on ``uow.session``; the append is the unit of work's
    (a rollback takes it back), and a second transaction after a commit works the same way."""
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await SQLAlchemyEventStore(uow.session).append(event("a"))
        uow.session.add(MixNote(id="a"))
        await uow.commit()
        await SQLAlchemyEventStore(uow.session).append(event("b"))
        uow.session.add(MixNote(id="b"))
        await uow.rollback()
        await SQLAlchemyEventStore(uow.session).append(event("c"))
        await uow.commit()
    assert await counts(tables) == (1, 2, 0)


@pytest.mark.parametrize("end", ["rollback", "exit"])
async def test_store_statements_after_a_commit_are_a_new_transaction(
    tables: AsyncEngine, session_factory: SF, end: str
) -> None:
    """With only the library's stores in the unit of work (no session made), the statements
    after ``commit()`` run in a new transaction: a rollback, or leaving the block without a
    commit, takes them back. (On asyncpg they ran in autocommit and stayed.)"""
    store = SQLAlchemyEventStore(session_factory)
    outbox = SQLAlchemyOutboxStorage(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.append(event("first"), uow=uow)
        await uow.commit()
        await store.append(event("second"), uow=uow)
        await outbox.save_messages([OutboxMessage(event_type="Noted")], uow=uow)
        if end == "rollback":
            await uow.rollback()
            await store.append(event("third"), uow=uow)
            await uow.commit()
    expected_events = 2 if end == "rollback" else 1
    assert await counts(tables) == (0, expected_events, 0)


@pytest.mark.parametrize("commit", [True, False], ids=["committed", "left"])
async def test_a_session_made_after_a_store_only_commit_joins_the_next_transaction(
    tables: AsyncEngine, session_factory: SF, commit: bool
) -> None:
    """A first transaction of stores only, committed; then the caller's ORM session is made:
    its writes and the stores' are the next transaction, committed or taken back together."""
    store = SQLAlchemyEventStore(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.append(event("first"), uow=uow)
        await uow.commit()
        uow.session.add(MixNote(id="n"))
        await store.append(event("second"), uow=uow)
        if commit:
            await uow.commit()
    assert await counts(tables) == ((1, 2, 0) if commit else (0, 1, 0))


async def test_savepoint_inside_a_connection_first_unit_of_work(
    tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.append(event("kept"))
        with pytest.raises(ValueError, match="undo"):
            async with uow.savepoint():
                uow.session.add(MixNote(id="undone"))
                await uow.session.flush()
                raise ValueError("undo")
        uow.session.add(MixNote(id="kept"))
        await uow.commit()
    assert await counts(tables) == (1, 1, 0)
    async with session_factory() as session:
        ids = (await session.execute(select(MixNote.id))).scalars().all()
    assert ids == ["kept"]


async def test_a_store_only_unit_of_work_never_creates_a_session(
    tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    outbox = SQLAlchemyOutboxStorage(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.append(event("s"))
        await outbox.save_messages([OutboxMessage(event_type="Noted")])
        assert uow._txn is not None and uow._txn._session is None  # type: ignore[union-attr]
        await uow.commit()
    assert await counts(tables) == (0, 1, 1)


async def test_transaction_listeners_see_a_store_only_unit_of_work(
    tables: AsyncEngine, session_factory: SF
) -> None:
    """An engine with ``begin`` / ``commit`` / ``rollback`` listeners (auditing, metrics):
    a unit of work of the stores alone still reaches them, committed and rolled back."""
    from sqlalchemy import event as sa_event

    seen: list[str] = []
    listeners = {
        name: (lambda _conn, name=name: seen.append(name))
        for name in ("begin", "commit", "rollback")
    }
    for name, listener in listeners.items():
        sa_event.listen(tables.sync_engine, name, listener)
    try:
        store = SQLAlchemyEventStore(session_factory)
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await store.append(event("listened"))
            await uow.commit()
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await store.append(event("undone"))
        assert seen == ["begin", "commit", "begin", "rollback"]
    finally:
        for name, listener in listeners.items():
            sa_event.remove(tables.sync_engine, name, listener)
    assert await counts(tables) == (0, 1, 0)


async def test_the_seed_pattern_leaves_nothing_for_the_cyclic_garbage_collector(
    tables: AsyncEngine, session_factory: SF
) -> None:
    """Stores built per request on ``uow.session`` (the seed's pattern) are freed by reference
    counting when the request ends: nothing of a unit of work waits for a collector pass."""

    async def request(n: int) -> None:
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await SQLAlchemyEventStore(uow.session).append(event(f"gc-{n}"))
            await SQLAlchemyOutboxStorage(uow.session).save_messages(
                [OutboxMessage(event_type="Noted")]
            )
            await uow.commit()

    await request(0)  # warm: caches the first request fills are not garbage
    gc.collect()
    gc.disable()
    try:
        for n in range(1, 6):
            await request(n)
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
    assert await counts(tables) == (0, 6, 6)
