"""The never-skip workload of the global log, shared by the direct-connection test
(``tests/reliability/event_store/test_es_never_skip.py``) and the standby test
(``tests/topology/replicas/test_never_skip_standby.py``).

``writers`` writers append ``total`` events across 200 streams in transactions of 1-10 events;
some write another table first (so their transaction id is older than their append), some roll
back. A subscriber tails the global log from the start while they run; it must see every
committed event once, in stream order, and nothing rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cqrs_ddd_core import StoredEvent, StreamState
from cqrs_ddd_core.errors import WrongExpectedVersionError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

STREAMS = 200

side_md = MetaData()
side = Table(
    "es_side_writes",
    side_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(50)),
)


async def run_never_skip(
    session_factory: async_sessionmaker[AsyncSession],
    writes: SQLAlchemyEventStore,
    tails: SQLAlchemyEventStore,
    *,
    total: int,
    writers: int = 8,
    catch_up_within: float = 60,
) -> float:
    """Run the workload (``writes`` appends, ``tails`` subscribes), assert what the subscriber
    saw, and return the seconds it took."""
    committed: list[str] = []
    rolled_back: set[str] = set()
    rng = random.Random(20_000)
    per_writer = total // writers

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
                rolled_back.update(ids)  # lost a race on the stream: the UoW rolled back
                continue
            committed.extend(ids)
            written += size

    seen: list[StoredEvent] = []
    want = [1 << 62]  # set to the committed count once the writers are done
    caught_up = asyncio.Event()

    async def subscriber() -> None:
        async for event in tails.subscribe(batch_size=500):
            seen.append(event)
            if len(seen) >= want[0]:
                caught_up.set()

    started = time.monotonic()
    tail = asyncio.create_task(subscriber())
    await asyncio.gather(*(writer(n) for n in range(writers)))
    # A last event (also wakes the subscriber if it is waiting); only then may it stop.
    last = await writes.append(StoredEvent(event_type="End", aggregate_id="end"))
    committed.extend(e.event_id for e in last)
    want[0] = len(committed)
    if len(seen) >= want[0]:
        caught_up.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(caught_up.wait(), catch_up_within)
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
    assert len(committed) >= total
    return elapsed
