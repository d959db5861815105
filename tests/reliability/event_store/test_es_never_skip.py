"""A tailing subscriber never skips, duplicates or sees rolled-back events under concurrency.

8 writers append 20,000 events across 200 streams in transactions of 1-10 events; some write
another table first (so their transaction id is older than their append), some roll back. A
subscriber tails the global log from the start while they run. ``CQRS_SOAK=1`` runs 10x more.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.never_skip import run_never_skip, side, side_md

from cqrs_ddd_core import StoredEvent, StreamState
from cqrs_ddd_core.errors import WrongExpectedVersionError
from cqrs_ddd_core.testing.event_store_contract import read_all_until
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

SOAK = os.environ.get("CQRS_SOAK") == "1"
WRITERS = 8
TOTAL = 200_000 if SOAK else 20_000

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
    elapsed = await run_never_skip(session_factory, store, store, total=TOTAL, writers=WRITERS)
    # Reported, not asserted: speed is the benchmark harness's to measure (``es.*``).
    print(f"never-skip[{dialect_name}]: {TOTAL} events by {WRITERS} writers in {elapsed:.1f}s")


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
