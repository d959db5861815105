"""A tailing subscriber never skips, duplicates or sees rolled-back events under concurrency.

8 writers append 20,000 events across 200 streams in transactions of 1-10 events; some write
another table first (so their transaction id is older than their append), some roll back. A
subscriber tails the global log from the start while they run. ``CQRS_SOAK=1`` runs 10x more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import defaultdict

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core import StoredEvent, StreamState
from cqrs_ddd_core.errors import WrongExpectedVersionError
from cqrs_ddd_core.testing.event_store_contract import read_all_until
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

SOAK = os.environ.get("CQRS_SOAK") == "1"
WRITERS = 8
TOTAL = 200_000 if SOAK else 20_000
STREAMS = 200

side_md = MetaData()
side = Table(
    "es_side_writes",
    side_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(50)),
)

SF = async_sessionmaker[AsyncSession]


@pytest.fixture
async def tables(library_tables: AsyncEngine) -> AsyncEngine:
    async with library_tables.begin() as conn:
        await conn.run_sync(side_md.create_all)
    return library_tables


async def test_subscriber_sees_every_committed_event_exactly_once(
    tables: AsyncEngine, session_factory: SF, dialect_name: str
) -> None:
    store = SQLAlchemyEventStore(session_factory, poll_interval=0.05)
    committed: list[str] = []
    rolled_back: set[str] = set()
    rng = random.Random(20_000)
    per_writer = TOTAL // WRITERS

    async def writer(n: int) -> None:
        local = random.Random(rng.random())
        written = 0
        while written < per_writer:
            size = min(local.randint(1, 10), per_writer - written)
            stream = f"s-{local.randrange(STREAMS)}"
            batch = [
                StoredEvent(event_type="Tick", aggregate_id=stream, payload={"w": n, "i": i})
                for i in range(size)
            ]
            ids = [e.event_id for e in batch]
            try:
                async with SQLAlchemyUnitOfWork(session_factory) as uow:
                    if local.random() < 0.3:
                        await uow.session.execute(insert(side).values(note=f"w{n}"))
                        await asyncio.sleep(0)  # let other writers interleave
                    await store.append(batch, expected_version=StreamState.ANY)
                    if local.random() < 0.1:
                        rolled_back.update(ids)
                        continue  # leaves the block without commit: rolled back
                    await uow.commit()
            except WrongExpectedVersionError:
                rolled_back.update(ids)  # lost a race on the stream: the UoW rolled back
                continue
            committed.extend(ids)
            written += size

    seen: list[StoredEvent] = []
    want = [1 << 62]  # set to the committed count once the writers are done
    caught_up = asyncio.Event()

    async def subscriber() -> None:
        async for event in store.subscribe(batch_size=500):
            seen.append(event)
            if len(seen) >= want[0]:
                caught_up.set()

    started = time.monotonic()
    tail = asyncio.create_task(subscriber())
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    # A last event (also wakes the subscriber if it is waiting); only then may it stop.
    last = await store.append(StoredEvent(event_type="End", aggregate_id="end"))
    committed.extend(e.event_id for e in last)
    want[0] = len(committed)
    if len(seen) >= want[0]:
        caught_up.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(caught_up.wait(), 60)
    await asyncio.sleep(0.3)  # anything extra (duplicates, rolled back) would arrive now
    tail.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tail
    elapsed = time.monotonic() - started

    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert set(ids) == set(committed), "the subscriber skipped or invented events"
    assert not set(ids) & rolled_back, "a rolled-back event was delivered"
    versions: dict[str, list[int]] = defaultdict(list)
    for event in seen:
        versions[event.aggregate_id].append(int(event.version or 0))
    for stream, got in versions.items():
        assert got == list(range(1, len(got) + 1)), f"stream {stream} out of order"
    assert len(committed) >= TOTAL
    if dialect_name == "postgresql" and not SOAK:
        assert elapsed < 60, f"took {elapsed:.1f}s"


@pytest.mark.postgres_only
async def test_older_transaction_appending_later_keeps_stream_order(
    tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as old:
        await old.session.execute(insert(side).values(note="xid first"))  # older xid
        [first] = await store.append(
            StoredEvent(event_type="A", aggregate_id="ordered"), uow=None
        )  # its own, newer transaction
        [second] = await store.append(
            StoredEvent(event_type="B", aggregate_id="ordered"), expected_version=1
        )
        await old.commit()
    page, _ = await read_all_until(store, {first.event_id, second.event_id})
    mine = [e.version for e in page if e.aggregate_id == "ordered"]
    assert mine == [1, 2]


async def test_occ_race_exactly_one_winner_per_round(
    tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    await store.append(StoredEvent(event_type="Open", aggregate_id="race"))
    for round_ in range(5):
        version = await store.get_version("race")
        results = await asyncio.gather(
            *(
                store.append(
                    StoredEvent(event_type="Bid", aggregate_id="race", payload={"t": t}),
                    expected_version=version,
                )
                for t in range(10)
            ),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, list)]
        losses = [r for r in results if isinstance(r, WrongExpectedVersionError)]
        assert (len(wins), len(losses)) == (1, 9), f"round {round_}: {results}"
        assert {(e.expected_version, e.actual_version) for e in losses} == {(version, version + 1)}
        assert await store.get_version("race") == version + 1


@pytest.mark.postgres_only
@pytest.mark.parametrize("loser_size", [1, 3])
async def test_race_loser_keeps_its_unit_of_work_usable(
    tables: AsyncEngine, session_factory: SF, loser_size: int
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as winner:
        await store.append(StoredEvent(event_type="W", aggregate_id="contested"), uow=winner)

        async def loser() -> None:
            async with SQLAlchemyUnitOfWork(session_factory) as uow:
                batch = [
                    StoredEvent(event_type="L", aggregate_id="contested") for _ in range(loser_size)
                ]
                with pytest.raises(WrongExpectedVersionError) as info:
                    # Blocks on the winner's uncommitted row, then loses.
                    await store.append(batch, expected_version=StreamState.NO_STREAM)
                assert info.value.actual_version == 1
                # Same transaction, still usable; ANY retries past the race by itself.
                await store.append(StoredEvent(event_type="L", aggregate_id="contested"))
                await store.append(StoredEvent(event_type="X", aggregate_id="elsewhere"))
                await uow.commit()

        task = asyncio.create_task(loser())
        await asyncio.sleep(0.3)
        await winner.commit()
    await asyncio.wait_for(task, 10)
    events = await store.get_events("contested")
    assert [(e.version, e.event_type) for e in events] == [(1, "W"), (2, "L")]
    assert await store.get_version("elsewhere") == 1


async def test_concurrent_retries_of_one_batch_store_it_once(
    tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory)
    batch = [StoredEvent(event_type="Paid", aggregate_id="once") for _ in range(3)]
    results = await asyncio.gather(*(store.append(batch) for _ in range(6)))
    ids = [e.event_id for e in batch]
    assert all([e.event_id for e in r] == ids for r in results)
    assert [e.event_id for e in await store.get_events("once")] == ids
