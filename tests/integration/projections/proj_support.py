"""Helpers of the projection tests: a counting projection, event fixtures, table snapshots.

The counting projection writes one document per stream with a plain upsert (no version, no
event id), so the document's ``_version`` counts how many times an event of that stream was
applied: it equals the stream's length exactly when no event was applied twice or skipped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_core.ports.event_store import IEventStore, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner, SQLAlchemyProjectionStore

TICK = "Tick"


def counting_projection(name: str, collection: str) -> Projection:
    projection = Projection(name, collections=[collection])

    @projection.on(TICK)
    async def tick(event: StoredEvent, ctx: ProjectionContext) -> None:
        await ctx.upsert(
            collection,
            event.aggregate_id,
            {"last_version": event.version, "last_n": event.payload["n"]},
            idempotent=False,  # so that _version counts applications
        )

    return projection


def ticks(stream: str, first_n: int, count: int) -> list[StoredEvent]:
    return [
        StoredEvent(event_type=TICK, aggregate_id=stream, payload={"n": first_n + i})
        for i in range(count)
    ]


async def append_round_robin(
    event_store: IEventStore, streams: int, per_stream: int, *, chunk: int = 10, prefix: str = "s"
) -> int:
    """Append ``streams * per_stream`` ticks, ``chunk`` per append, cycling over streams."""
    n = 0
    for start in range(0, per_stream, chunk):
        size = min(chunk, per_stream - start)
        for s in range(streams):
            await event_store.append(
                ticks(f"{prefix}{s}", n, size),
                expected_version=start if start else StreamState.NO_STREAM,
            )
            n += size
    return n


async def snapshot(store: SQLAlchemyProjectionStore, collection: str) -> dict[str, Any]:
    """``doc id -> document`` of a collection (bookkeeping that depends on timing removed)."""
    return {row.pop("_id"): row for row in await store.find(collection)}


async def run_until(
    runner: ProjectionRunner, total: int, *, limit_s: float = 60.0, progress: Any = None
) -> None:
    """Run ``runner`` until its checkpoint counts ``total`` events.

    One ``run_once`` is not enough on PostgreSQL: events of committed transactions stay invisible
    while any older transaction of the cluster is open (the event store's commit-safe horizon),
    and the suite shares its server with other work.
    """
    deadline = time.monotonic() + limit_s
    while True:
        await runner.run_once(wait=True, progress=progress)
        checkpoint = await runner.status()
        done = checkpoint.events_processed if checkpoint else 0
        if done >= total:
            assert done == total, f"{done} events applied, expected {total}"
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"only {done} of {total} events applied after {limit_s}s")
        await asyncio.sleep(0.05)


async def wait_for_checkpoint(
    runner: ProjectionRunner, total: int, *, limit_s: float = 60.0
) -> None:
    """Wait until another task running ``runner`` has applied ``total`` events."""
    deadline = time.monotonic() + limit_s
    while True:
        checkpoint = await runner.status()
        done = checkpoint.events_processed if checkpoint else 0
        if done >= total:
            assert done == total, f"{done} events applied, expected {total}"
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"only {done} of {total} events applied after {limit_s}s")
        await asyncio.sleep(0.02)
