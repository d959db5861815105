"""Helpers shared by the repository integration tests: the rich order repository, an order
with lines, and a recorder of the statements an engine sends."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from repo_models import Address, Kind, Money, OrderLine, RichOrder, RichOrderModel
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.core import ModelMapper, SQLAlchemyRepository


def rich_repo() -> SQLAlchemyRepository[RichOrder]:
    mapper = ModelMapper(RichOrder, RichOrderModel, field_map={"customer": "customer_id"})
    return SQLAlchemyRepository(RichOrder, RichOrderModel, mapper)


def rich_order(n: int = 0, lines: int = 3) -> RichOrder:
    return RichOrder(
        id=uuid.uuid4(),
        customer=f"c{n}",
        kind=Kind.WHOLESALE,
        placed_at=dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
        shipping=Address(street="1 Main St", city="Springfield"),
        budget=Money(amount=Decimal("100.50"), currency="EUR"),
        tags=["a", "b"],
        lines=[
            OrderLine(id=f"l{i}", sku=f"sku-{i}", qty=i + 1, price=Decimal(f"{i}.25"))
            for i in range(lines)
        ],
    )


@contextmanager
def count_queries(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
