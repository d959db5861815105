"""Workers that stall past their lease: the fencing token lets exactly one ack win per row."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.queue import Backoff, DurableQueue, queue_columns
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION

SOAK = os.environ.get("CQRS_SOAK") == "1"


async def test_stalled_workers_never_double_ack(engine: AsyncEngine) -> None:
    table = Table(
        "race_items",
        MetaData(naming_convention=NAMING_CONVENTION),
        *queue_columns(),
        Column("name", String(20), nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    total = 2000 if SOAK else 300
    queue = DurableQueue(
        table, engine, lease_seconds=0.15, max_attempts=1000, backoff=Backoff(base=0.01)
    )
    await queue.enqueue([{"name": f"n{i}"} for i in range(total)])
    acked: Counter[int] = Counter()
    lost = 0
    rng = random.Random(7)

    async def worker() -> None:
        nonlocal lost
        idle = 0
        while idle < 5:
            batch = await queue.claim(5)
            if not batch:
                idle += 1
                await asyncio.sleep(0.05)
                continue
            idle = 0
            # Some workers stall beyond the lease: their rows are re-claimed meanwhile.
            await asyncio.sleep(rng.choice([0.0, 0.0, 0.0, 0.3]))
            if rng.random() < 0.1:
                outcome = await queue.fail(batch, error="flaky")
            else:
                outcome = await queue.complete(batch)
                acked.update(outcome.done)
            lost += len(outcome.lost)

    await asyncio.gather(*(worker() for _ in range(6)))
    stats = await queue.stats()
    assert stats.done == total and stats.pending == 0
    assert len(acked) == total
    assert [row for row, n in acked.items() if n > 1] == []  # one winning ack per row
    assert lost > 0  # the stalls really did lose leases
