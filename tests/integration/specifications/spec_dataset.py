"""A fixed dataset, its tables and its in-memory twin (round-trip and differential tests)."""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class SpecCustomer(Base):
    __tablename__ = "spec_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class SpecItem(Base):
    __tablename__ = "spec_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("spec_orders.id"))
    sku: Mapped[str] = mapped_column(sa.String(20))
    qty: Mapped[int] = mapped_column(sa.Integer)


class SpecOrder(Base):
    __tablename__ = "spec_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str | None] = mapped_column(sa.String(20))
    name: Mapped[str | None] = mapped_column(sa.String(50))
    total: Mapped[int | None] = mapped_column(sa.Integer)
    price: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    description: Mapped[str | None] = mapped_column(sa.Text, info={"fts_config": "simple"})
    meta: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    )
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("spec_customers.id"))
    customer: Mapped[SpecCustomer | None] = relationship()
    items: Mapped[list[SpecItem]] = relationship()


STATUSES = ["active", "Active", "shipped", "cancelled", "", None]
NAMES = ["50%_off", "50% off", "a_b", "aXb", "it's", "back\\slash", "Widget", "widget pro", None]
WORDS = ["python", "programming", "rust", "data", "base", "fast", "the", "search"]
COLORS = ["red", "blue", "Red", ""]
TAGS = ["premium", "new", "sale", "it's", "50%"]
SKUS = ["A-1", "B-2", "C-3", "a-1"]
CUSTOMERS = ["Acme", "acme", "Globex", "O'Brien"]
BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _meta(rng: random.Random) -> dict[str, Any] | None:
    roll = rng.random()
    if roll < 0.12:
        return None
    if roll < 0.18:
        return {}
    meta: dict[str, Any] = {}
    if rng.random() < 0.7:
        meta["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    if rng.random() < 0.6:
        meta["color"] = rng.choice([*COLORS, 3, None])
    if rng.random() < 0.6:
        meta["n"] = rng.choice([0, 1, 2.5, 10, -3, "10", True])
    if rng.random() < 0.4:
        meta["flag"] = rng.choice([True, False])
    if rng.random() < 0.3:
        meta["nested"] = {"a": rng.choice([1, "x", [1, 2], {"b": True}])}
    return meta


def build_rows(count: int = 48, seed: int = 7) -> list[SimpleNamespace]:
    """The in-memory twin of the table rows (plain objects with the same attributes)."""
    rng = random.Random(seed)
    customers = [SimpleNamespace(id=i + 1, name=n) for i, n in enumerate(CUSTOMERS)]
    rows = []
    item_id = 0
    for index in range(1, count + 1):
        customer = rng.choice([*customers, None])
        items = []
        for _ in range(rng.randint(0, 3)):
            item_id += 1
            items.append(SimpleNamespace(id=item_id, sku=rng.choice(SKUS), qty=rng.randint(0, 5)))
        rows.append(
            SimpleNamespace(
                id=index,
                status=rng.choice(STATUSES),
                name=rng.choice(NAMES),
                total=rng.choice([None, 0, 50, 100, 101, 150, 999, -5]),
                price=rng.choice([None, 0.5, 1.25, 99.5, 100.0]),
                created_at=rng.choice(
                    [None, *(BASE_TIME + dt.timedelta(days=d) for d in (0, 1, 10, 40))]
                ),
                description=(
                    None
                    if rng.random() < 0.1
                    else " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
                ),
                meta=_meta(rng),
                customer=customer,
                customer_id=customer.id if customer else None,
                items=items,
            )
        )
    return rows


ROWS = build_rows()


async def load(conn: Any) -> None:
    """Create the tables and insert :data:`ROWS` on ``conn`` (an ``AsyncConnection``)."""
    await conn.run_sync(Base.metadata.create_all)
    await conn.execute(
        sa.insert(SpecCustomer), [{"id": i + 1, "name": n} for i, n in enumerate(CUSTOMERS)]
    )
    await conn.execute(
        sa.insert(SpecOrder),
        [
            {
                "id": r.id,
                "status": r.status,
                "name": r.name,
                "total": r.total,
                "price": r.price,
                "created_at": r.created_at,
                "description": r.description,
                "metadata": r.meta,
                "customer_id": r.customer_id,
            }
            for r in ROWS
        ],
    )
    items = [
        {"id": i.id, "order_id": r.id, "sku": i.sku, "qty": i.qty} for r in ROWS for i in r.items
    ]
    await conn.execute(sa.insert(SpecItem), items)
