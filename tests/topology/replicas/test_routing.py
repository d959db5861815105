"""Which server serves each read, with a real streaming standby.

Query-side reads outside a unit of work go to the standby; reads inside a unit of work (or on
a bound session) and writes go to the primary. Checked by what the server says of itself
(``pg_is_in_recovery()``) and by content: with replay held back on the standby
(``recovery_min_apply_delay``), a row just committed on the primary is missing from every store
read that the standby served.
"""

from __future__ import annotations

from replica_support import (
    PROBE,
    Note,
    NoteModel,
    create_tables,
    elsewhere,
    orm_read_served_by_standby,
    read_served_by_standby,
)
from sqlalchemy.ext.asyncio import AsyncSession
from tests.topology.standby import Standby

from cqrs_ddd_core import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.replicas import (
    RoutedEngine,
    last_commit,
    read_after,
    replicas_of,
)


async def test_query_reads_go_to_the_standby_and_unit_of_work_reads_to_the_primary(
    routed, standby: Standby
) -> None:
    engine = routed(max_replica_lag=60)
    assert isinstance(engine, RoutedEngine)
    assert await read_served_by_standby(engine)
    assert await orm_read_served_by_standby(engine)
    assert await read_served_by_standby(engine)  # every read, not the first only

    async with SQLAlchemyUnitOfWork(engine) as uow:  # ambient: joined, on the primary
        assert not await read_served_by_standby(engine)
        assert not await orm_read_served_by_standby(engine)
        assert not await read_served_by_standby(uow)
    async with AsyncSession(engine) as session:  # a bound session is the primary's
        assert not await read_served_by_standby(session)
        assert not await orm_read_served_by_standby(session)
    async with Binding(engine).single() as runner:  # writes' path: the primary
        assert not (await runner.fetch(PROBE))[0][0]


async def test_every_store_read_is_served_by_the_standby(routed, standby: Standby) -> None:
    engine = routed(max_replica_lag=3600, read_your_writes_timeout=0.05)
    await create_tables(engine)
    repo = SQLAlchemyRepository(Note, NoteModel, engine)
    docs = SQLAlchemyProjectionStore(engine)
    await docs.ensure_collection("docs")
    events = SQLAlchemyEventStore(engine, listen=False)
    standby.wait_replayed()
    standby.set_delay(3600)  # nothing committed from now on is replayed

    async def write() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await repo.add(Note(id="n1", body="hello"))
            await docs.upsert("docs", "d1", {"total": 5}, uow=uow)
            await events.append(StoredEvent(event_type="Noted", aggregate_id="n1"))
            await uow.commit()

    await elsewhere(write)  # another request: this one carries no commit position

    # Served by the standby, which has not replayed the commit.
    assert await repo.get("n1") is None
    assert await repo.get_many(["n1"]) == []
    assert not await repo.exists("n1")
    assert await repo.search(None) == []
    assert await docs.get("docs", "d1") is None
    assert await docs.get_many("docs", ["d1"]) == {}
    assert await docs.find("docs") == []
    assert await docs.count("docs") == 0
    assert (await events.read_all())[0] == []

    # Inside a unit of work: the primary.
    async with SQLAlchemyUnitOfWork(engine) as uow:
        found = await repo.get("n1")
        assert found is not None and found.body == "hello"
        assert await docs.get("docs", "d1", uow=uow) is not None
        assert len((await events.read_all(uow=uow))[0]) == 1

    standby.set_delay(0)
    standby.wait_replayed()
    assert (await repo.get("n1")) is not None
    assert await docs.count("docs") == 1
    assert len((await events.read_all())[0]) == 1


async def test_read_your_writes_is_served_by_the_primary_until_the_standby_replays(
    routed, standby: Standby
) -> None:
    engine = routed(max_replica_lag=3600, read_your_writes_timeout=0.1)
    await create_tables(engine)
    repo = SQLAlchemyRepository(Note, NoteModel, engine)
    standby.wait_replayed()
    standby.set_delay(3600)
    assert await read_served_by_standby(engine)
    assert last_commit() is None

    async with SQLAlchemyUnitOfWork(engine) as uow:
        await repo.add(Note(id="mine", body="written"))
        await uow.commit()
    token = last_commit()
    assert token is not None

    # This context committed: the standby has not replayed it, so the primary serves the read.
    assert (await repo.get("mine")) is not None
    assert not await read_served_by_standby(engine)
    assert not await orm_read_served_by_standby(engine)

    async def later_request() -> tuple[bool, bool]:
        read_after(token)  # the token carried in a cookie
        return (await repo.get("mine")) is not None, await read_served_by_standby(engine)

    async def fresh_request() -> bool:
        return await read_served_by_standby(engine)

    assert await elsewhere(later_request) == (True, False)
    assert await elsewhere(fresh_request)  # no token: the standby

    # Once replayed, the standby serves the same context again.
    standby.set_delay(0)
    standby.wait_replayed()
    assert await read_served_by_standby(engine)
    assert (await repo.get("mine")) is not None


async def test_read_your_writes_waits_for_the_standby_to_replay(routed, standby: Standby) -> None:
    replicas_timeout = 30.0
    engine = routed(max_replica_lag=3600, read_your_writes_timeout=replicas_timeout)
    await create_tables(engine)
    repo = SQLAlchemyRepository(Note, NoteModel, engine)
    standby.wait_replayed()
    standby.set_delay(0.5)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        await repo.add(Note(id="waited", body="for"))
        await uow.commit()
    token = last_commit()
    assert token is not None
    # Served by the standby, and only once it had replayed the commit: the row is there.
    assert await read_served_by_standby(engine)
    assert (await repo.get("waited")) is not None
    replica = replicas_of(engine)
    assert replica is not None
    hi, lo = token.split("/")
    assert replica.replicas[0].replayed >= int(hi, 16) << 32 | int(lo, 16)
