"""Helpers of the projection tests: a counting projection, event fixtures, table snapshots.

The counting projection writes one document per stream with a plain upsert (no version, no
event id), so the document's ``_version`` counts how many times an event of that stream was
applied: it equals the stream's length exactly when no event was applied twice or skipped.
"""

from __future__ import annotations

from typing import Any

from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext
from cqrs_ddd_core.ports.event_store import IEventStore, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore

TICK = "Tick"


def counting_projection(name: str, collection: str) -> Projection:
    projection = Projection(name, collections=[collection])

    @projection.on(TICK)
    async def tick(event: StoredEvent, ctx: ProjectionContext) -> None:
        await ctx.store.upsert(
            collection,
            event.aggregate_id,
            {"last_version": event.version, "last_n": event.payload["n"]},
            uow=ctx.uow,
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
