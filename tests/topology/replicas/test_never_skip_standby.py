"""The global log never skips when a subscriber tails a standby while writers commit on the
primary.

The same workload as ``tests/reliability/event_store/test_es_never_skip.py``: 8 writers append
20,000 events across 200 streams in transactions of 1-10 events, some writing another table
first (their transaction id is older than their append), some rolling back. The subscriber's
event store is built on an engine of the standby alone, so every page it reads — and the
horizon ``pg_snapshot_xmin(pg_current_snapshot())`` that bounds the page — is the standby's:
its snapshot is the one hot standby builds from the primary's WAL (running transactions and
their ends, as replayed), which must hold back every transaction still running on the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import pg_connect_args
from tests.topology.standby import Standby

from conftest import url_for
from cqrs_ddd_core import StoredEvent, StreamState
from cqrs_ddd_core.errors import WrongExpectedVersionError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

WRITERS = 8
TOTAL = 20_000
STREAMS = 200

side_md = MetaData()
side = Table(
    "es_side_writes",
    side_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(50)),
)


@pytest.fixture
async def engines(
    standby: Standby, schema: str, driver: str
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """(the primary's engine, an engine of the standby alone) on the test's schema."""
    settings = {"search_path": f"{schema}, public"}
    primary_url, standby_url = url_for(driver), standby.url(driver)
    primary = create_engine(
        primary_url, connect_args=pg_connect_args(primary_url, **settings), pool_size=10
    )
    replica = create_engine(standby_url, connect_args=pg_connect_args(standby_url, **settings))
    try:
        async with primary.begin() as conn:
            await conn.run_sync(side_md.create_all)
        yield primary, replica
    finally:
        await replica.dispose()
        await primary.dispose()


async def test_a_subscriber_on_the_standby_sees_every_committed_event_exactly_once(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    primary, replica = engines
    async with replica.connect() as conn:
        assert (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar() is True
    session_factory = async_sessionmaker(primary, expire_on_commit=False)
    writes = SQLAlchemyEventStore(session_factory)
    # On the standby: no LISTEN there (NOTIFY is not replicated), a short poll instead.
    tails = SQLAlchemyEventStore(replica, listen=False, poll_interval=0.05)
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
                    await writes.append(batch, expected_version=StreamState.ANY)
                    if local.random() < 0.1:
                        rolled_back.update(ids)
                        continue  # leaves the block without commit: rolled back
                    await uow.commit()
            except WrongExpectedVersionError:
                rolled_back.update(ids)
                continue
            committed.extend(ids)
            written += size

    seen: list[StoredEvent] = []
    want = [1 << 62]
    caught_up = asyncio.Event()

    async def subscriber() -> None:
        async for event in tails.subscribe(batch_size=500):
            seen.append(event)
            if len(seen) >= want[0]:
                caught_up.set()

    tail = asyncio.create_task(subscriber())
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    last = await writes.append(StoredEvent(event_type="End", aggregate_id="end"))
    committed.extend(e.event_id for e in last)
    want[0] = len(committed)
    if len(seen) >= want[0]:
        caught_up.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(caught_up.wait(), 120)
    await asyncio.sleep(0.3)  # anything extra (duplicates, rolled back) would arrive now
    tail.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tail

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
