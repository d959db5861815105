"""A replica that is down or lagging past the limit is skipped; reads keep working."""

from __future__ import annotations

import asyncio

from replica_support import (
    Note,
    NoteModel,
    create_tables,
    orm_read_served_by_standby,
    read_served_by_standby,
    until_usable,
)
from tests.topology.standby import Standby

from cqrs_ddd_core import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.replicas import replicas_of


async def test_reads_fail_over_to_the_primary_when_the_standby_stops(
    routed, standby: Standby
) -> None:
    # A long check interval: the set still believes the standby is up when it stops, so the
    # read itself finds it gone and moves to the primary.
    engine = routed(max_replica_lag=60, replica_check_interval=3600)
    await create_tables(engine)
    repo = SQLAlchemyRepository(Note, NoteModel, engine)
    docs = SQLAlchemyProjectionStore(engine)
    await docs.ensure_collection("docs")
    events = SQLAlchemyEventStore(engine, listen=False)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        await repo.add(Note(id="n", body="kept"))
        await docs.upsert("docs", "d", {"n": 1}, uow=uow)
        await events.append(StoredEvent(event_type="E", aggregate_id="n"))
        await uow.commit()
    standby.wait_replayed()
    replica_set = replicas_of(engine)
    assert replica_set is not None
    await until_usable(replica_set)
    assert await read_served_by_standby(engine)  # pools now hold standby connections
    assert await orm_read_served_by_standby(engine)

    for read in ("statements", "orm"):
        standby.stop()
        assert replica_set.replicas[0].usable  # not checked since
        if read == "statements":
            assert await docs.get("docs", "d") is not None
            assert len((await events.read_all())[0]) == 1
        else:
            assert (await repo.get("n")) is not None
        assert not replica_set.replicas[0].usable  # the read marked it down
        assert not await read_served_by_standby(engine)
        assert (await repo.search(None))[0].body == "kept"
        standby.start()
        await until_usable(replica_set)  # the next check finds it back
        assert await read_served_by_standby(engine)


async def test_a_stopped_standby_is_skipped_by_the_check(routed, standby: Standby) -> None:
    engine = routed(max_replica_lag=60)
    replica_set = replicas_of(engine)
    assert replica_set is not None
    assert await read_served_by_standby(engine)
    standby.stop()
    await replica_set.check()
    assert not replica_set.replicas[0].usable
    assert not await read_served_by_standby(engine)
    assert not await orm_read_served_by_standby(engine)


async def test_a_standby_lagging_past_the_limit_is_skipped(routed, standby: Standby) -> None:
    max_lag = 0.5
    engine = routed(max_replica_lag=max_lag)
    await create_tables(engine)
    repo = SQLAlchemyRepository(Note, NoteModel, engine)
    replica_set = replicas_of(engine)
    assert replica_set is not None
    standby.wait_replayed()
    await until_usable(replica_set)
    assert await read_served_by_standby(engine)

    standby.set_delay(3600)  # the next commits wait an hour to be replayed
    for n in range(3):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            await repo.add(Note(id=f"late-{n}", body="x"))
            await uow.commit()
    await asyncio.sleep(max_lag * 3)  # the oldest unreplayed commit is now older than the limit
    await replica_set.check()
    assert not replica_set.replicas[0].usable
    assert not await read_served_by_standby(engine)  # also without a commit position
    assert len(await repo.search(None)) == 3  # the primary's rows

    standby.set_delay(0)
    standby.wait_replayed()
    await until_usable(replica_set)
    assert await read_served_by_standby(engine)
