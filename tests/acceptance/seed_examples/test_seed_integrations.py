"""Seed README: the FastAPI integration (driven through httpx's ASGI transport) and the
dependency-injector container, run as written on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.acceptance.seed_examples.seed_blocks import DEPENDENCY_INJECTION, FASTAPI
from tests.acceptance.seed_examples.seed_prelude import (
    ORDER_MODELS,
    create_tables,
    namespace,
    run_block,
)

#: What the FastAPI block assumes: the request model and the Quick Start infrastructure.
FASTAPI_ASSUMES = """
class CreateOrderRequest(BaseModel):
    id: str
    customer_id: str
    total: float

engine = create_async_engine("postgresql+asyncpg://user:pass@localhost/db")
session_factory = async_sessionmaker(engine, expire_on_commit=False)
order_repo = SQLAlchemyRepository(entity_cls=Order, db_model_cls=OrderModel)
"""

#: What the container assumes: a service using the repository inside its unit of work.
SERVICE = """
class OrderService:
    def __init__(self, order_repo, uow):
        self.order_repo = order_repo
        self.uow = uow

    async def place(self, order_id: str, total: float) -> Order:
        async with self.uow:
            order = Order(id=order_id, customer_id="c1", total=total)
            await self.order_repo.add(order)  # the ambient unit of work
            await self.uow.commit()
        return order

    async def find(self, order_id: str):
        async with self.uow:
            return await self.order_repo.get(order_id)
"""


# ``order_data.dict()`` in the seed is pydantic v1 style: it works, with a deprecation warning.
@pytest.mark.filterwarnings("ignore::pydantic.PydanticDeprecatedSince20")
async def test_seed_fastapi_integration(seed_url: str) -> None:
    ns = await namespace(ORDER_MODELS)
    await run_block(FASTAPI_ASSUMES, ns, seed_url)
    try:
        await create_tables(ns)
        await run_block(FASTAPI, ns)
        transport = httpx.ASGITransport(app=ns["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            created = await client.post(
                "/orders", json={"id": "o-1", "customer_id": "c1", "total": 99.99}
            )
            assert created.status_code == 200, created.text
            assert created.json() == {"id": "o-1"}
            fetched = await client.get("/orders/o-1")
            assert fetched.status_code == 200
            body: dict[str, Any] = fetched.json()
            assert (body["id"], body["customer_id"], body["total"], body["status"]) == (
                "o-1",
                "c1",
                99.99,
                "pending",
            )
            missing = await client.get("/orders/nope")
            assert missing.status_code == 200 and missing.json() is None
            # a second order with the same id is a conflict (ASGITransport re-raises app errors)
            with pytest.raises(ns["OptimisticConcurrencyError"]):
                await client.post("/orders", json={"id": "o-1", "customer_id": "c2", "total": 1})
        async with ns["session_factory"]() as session:
            row = await session.get(ns["OrderModel"], "o-1")
            assert row is not None and row.customer_id == "c1" and row.version == 1
    finally:
        await ns["engine"].dispose()


async def test_seed_dependency_injection_container(seed_url: str) -> None:
    ns = await namespace(ORDER_MODELS, SERVICE)
    await run_block(DEPENDENCY_INJECTION, ns)
    container = ns["Container"]()
    container.config.database_url.from_value(seed_url)
    engine = container.engine()
    try:
        await create_tables(ns, engine)
        service = container.order_service()
        assert container.order_service().uow is not service.uow  # a new UoW per service
        assert container.order_repo() is container.order_repo()  # one repository
        placed = await service.place("o-1", 10.5)
        assert placed.version == 1
        found = await container.order_service().find("o-1")
        assert found is not None and found.total == 10.5
        # the same service (and UoW) serves a second request after the first
        await service.place("o-2", 3)
        assert (await service.find("o-2")).version == 1
    finally:
        await engine.dispose()
