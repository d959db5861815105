"""HTTP API: one composition root (``create_app``), one unit of work per request.

- ``POST /orders`` places an order; its ``OrderPlaced`` event is appended to the event store
  (for projections) and goes to the outbox (for the broker) in the same transaction
  (``event_sinks=[events, outbox]``).
- ``GET /orders/{id}`` returns it with its version (send it back as ``If-Match``).
- ``POST /orders/{id}/ship`` ships it; a stale ``If-Match`` version gets 409.
- ``GET /orders?status=&min_total=&limit=`` searches with a specification, all in SQL.
- ``GET /outbox`` shows the outbox counters.

Library errors map to HTTP statuses in one exception handler.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import reduce
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import (
    ConcurrencyError,
    CQRSDDDError,
    DomainError,
    NotFoundError,
    SpecificationError,
)
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy import metadata as library_metadata
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_specifications import Condition, QueryOptions
from order_service.domain import Order
from order_service.models import Base, OrderModel


class PlaceOrder(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64)
    total: Decimal = Field(gt=0, max_digits=12, decimal_places=2)


class ShipOrder(BaseModel):
    carrier: str = Field(min_length=1, max_length=50)


class OrderOut(BaseModel):
    id: str
    customer_id: str
    total: Decimal
    status: str
    carrier: str | None
    version: int

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            customer_id=order.customer_id,
            total=order.total,
            status=order.status,
            carrier=order.carrier,
            version=order.version,
        )


class Services:
    """The application's wiring, built once at start-up."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session_factory: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        self.events = SQLAlchemyEventStore(engine)
        self.outbox = SQLAlchemyOutboxStorage(engine)
        self.orders = SQLAlchemyRepository(Order, OrderModel)

    def uow(self) -> SQLAlchemyUnitOfWork:
        return SQLAlchemyUnitOfWork(self.session_factory, event_sinks=[self.events, self.outbox])


_STATUS: list[tuple[type[CQRSDDDError], int]] = [
    (NotFoundError, 404),
    (ConcurrencyError, 409),
    (DomainError, 422),
    (SpecificationError, 400),
]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def unit_of_work(
    svc: Annotated[Services, Depends(services)],
) -> AsyncIterator[SQLAlchemyUnitOfWork]:
    # FastAPI finishes this after the response has started. That is safe because leaving the
    # unit of work raises nothing for the database (a connection lost by then is discarded);
    # what the endpoint raised passes through here unchanged on its way to the handler below.
    async with svc.uow() as uow:
        yield uow


Svc = Annotated[Services, Depends(services)]
Uow = Annotated[SQLAlchemyUnitOfWork, Depends(unit_of_work)]


def create_app(
    database_url: str | None = None,
    *,
    engine: AsyncEngine | None = None,
    create_tables: bool = True,
) -> FastAPI:
    """The FastAPI application for ``database_url``.

    Pass ``engine`` to share one the caller owns (it is not disposed). ``create_tables`` runs
    ``create_all`` at start-up (development); in production apply migrations instead
    (docs/alembic-example).
    """
    if (database_url is None) == (engine is None):
        raise ValueError("pass a database_url or an engine")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine or create_engine(database_url or "")
        if create_tables:
            async with own.begin() as conn:
                await conn.run_sync(library_metadata.create_all)
                await conn.run_sync(Base.metadata.create_all)
        app.state.services = Services(own)
        try:
            yield
        finally:
            if engine is None:
                await own.dispose()

    app = FastAPI(title="Order service", lifespan=lifespan)

    @app.exception_handler(CQRSDDDError)
    async def library_error(_: Request, exc: CQRSDDDError) -> JSONResponse:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        if exc.retryable and status == 500:
            status = 503
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status)

    @app.post("/orders", status_code=201)
    async def place_order(body: PlaceOrder, svc: Svc, uow: Uow) -> OrderOut:
        order = Order.place(f"ord-{uuid.uuid4().hex[:12]}", body.customer_id, body.total)
        await svc.orders.add(order, uow=uow)
        await uow.commit()
        return OrderOut.of(order)

    async def load(svc: Services, uow: SQLAlchemyUnitOfWork, order_id: str) -> Order:
        order = await svc.orders.get(order_id, uow=uow)
        if order is None:
            raise NotFoundError(f"no order {order_id!r}", kind="order", key=order_id)
        return order

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, svc: Svc, uow: Uow) -> OrderOut:
        return OrderOut.of(await load(svc, uow, order_id))

    @app.post("/orders/{order_id}/ship")
    async def ship_order(
        order_id: str,
        body: ShipOrder,
        svc: Svc,
        uow: Uow,
        if_match: Annotated[int | None, Header()] = None,
    ) -> OrderOut:
        order = await load(svc, uow, order_id)
        if if_match is not None and if_match != order.version:
            raise ConcurrencyError(
                f"order {order_id} is at version {order.version}, not {if_match}"
            )
        order.ship(body.carrier)
        await svc.orders.add(order, uow=uow)
        await uow.commit()
        return OrderOut.of(order)

    @app.get("/orders")
    async def search_orders(
        svc: Svc,
        uow: Uow,
        status: str | None = None,
        min_total: Decimal | None = None,
        limit: int = 50,
    ) -> list[OrderOut]:
        conditions = []
        if status is not None:
            conditions.append(Condition("status", "eq", status))
        if min_total is not None:
            conditions.append(Condition("total", "gte", min_total))
        spec = reduce(operator.and_, conditions) if conditions else None
        options = QueryOptions(order_by=("-total", "id"), limit=min(max(limit, 1), 500))
        return [OrderOut.of(o) for o in await svc.orders.search(spec, options, uow=uow)]

    @app.get("/outbox")
    async def outbox_stats(svc: Svc) -> dict[str, Any]:
        stats = await svc.outbox.stats()
        return {"pending": stats.pending, "published": stats.done, "dead": stats.dead}

    return app


def create_app_from_env() -> FastAPI:
    """``create_app`` with ``CQRS_DATABASE_URL`` (default: ``./orders.db``), for uvicorn."""
    import os

    return create_app(os.environ.get("CQRS_DATABASE_URL", "sqlite+aiosqlite:///./orders.db"))
