"""The demo's read model: one document per order, built from the order events.

Run or rebuild it with the CLI after a demo run::

    cqrs-ddd-sqla projections rebuild -d sqlite+aiosqlite:///./cqrs-ddd-demo.db \
        -p cqrs_ddd_persistence_sqlalchemy.cli.demo.read_model:order_summaries
"""

from __future__ import annotations

from typing import Any

from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext

__all__ = ["COLLECTION", "order_summaries"]

COLLECTION = "demo_order_summaries"

order_summaries = Projection("demo.order_summaries", collections=[COLLECTION])


@order_summaries.on("demo.OrderPlaced")
async def _placed(event: Any, ctx: ProjectionContext) -> None:
    await ctx.upsert(
        COLLECTION,
        event.aggregate_id,
        {
            "customer_id": event.payload["customer_id"],
            "total": float(event.payload["total"]),
            "status": "placed",
        },
    )


async def _set_status(event: Any, ctx: ProjectionContext, status: str, **extra: Any) -> None:
    current = await ctx.get(COLLECTION, event.aggregate_id) or {}
    doc = {k: v for k, v in current.items() if not k.startswith("_") and k != "id"}
    await ctx.upsert(COLLECTION, event.aggregate_id, {**doc, "status": status, **extra})


@order_summaries.on("demo.OrderPaid")
async def _paid(event: Any, ctx: ProjectionContext) -> None:
    await _set_status(event, ctx, "paid")


@order_summaries.on("demo.OrderShipped")
async def _shipped(event: Any, ctx: ProjectionContext) -> None:
    await _set_status(event, ctx, "shipped", carrier=event.payload["carrier"])
