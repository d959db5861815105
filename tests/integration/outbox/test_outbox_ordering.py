"""Per-key ordering survives concurrency, refusals and retries (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff


async def test_four_relays_keep_per_key_order_through_refusals(
    library_tables: AsyncEngine,
) -> None:
    keys, events = 20, 10
    outbox = SQLAlchemyOutboxStorage(
        library_tables,
        ordered_by_key=True,
        lease_seconds=10,
        max_attempts=50,
        backoff=Backoff(base=0.01, maximum=0.05),
    )
    await outbox.save_messages(
        [
            OutboxMessage(event_type="Moved", payload={"seq": e}, partition_key=f"k{k}")
            for e in range(events)
            for k in range(keys)
        ]
    )
    rng = random.Random(3)

    def flaky(_m: OutboxMessage) -> BaseException | None:
        return ConnectionError("broker hiccup") if rng.random() < 0.2 else None

    publisher = InMemoryPublisher(fail=flaky, delay=0.001)
    relays = [OutboxRelay(outbox, publisher, batch_size=8, listen=False) for _ in range(4)]

    async def drain(relay: OutboxRelay) -> None:
        idle = 0
        while idle < 20:
            if await relay.run_once():
                idle = 0
            else:
                idle += 1
                await asyncio.sleep(0.02)

    await asyncio.gather(*(drain(r) for r in relays))
    assert sum(r.metrics.failed for r in relays) > 0  # refusals really happened
    per_key: dict[str | None, list[int]] = {}
    for m in publisher.published:
        per_key.setdefault(m.partition_key, []).append(m.payload["seq"])
    assert len(per_key) == keys
    assert all(seqs == list(range(events)) for seqs in per_key.values()), per_key
