"""examples/fastapi_order_service through httpx's ASGI transport, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.acceptance.conftest import ROOT

sys.path.insert(0, str(ROOT / "examples" / "fastapi_order_service"))
create_app: Callable[..., FastAPI] = importlib.import_module("order_service").create_app


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(engine=engine)  # the fixture's isolated database / schema
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as c:
            yield c


async def test_example_fastapi_order_lifecycle(client: httpx.AsyncClient) -> None:
    placed = await client.post("/orders", json={"customer_id": "c-1", "total": "120.50"})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "placed" and order["version"] == 1

    await client.post("/orders", json={"customer_id": "c-2", "total": "15.00"})
    got = await client.get(f"/orders/{order['id']}")
    assert got.json() == order

    stale = await client.post(
        f"/orders/{order['id']}/ship", json={"carrier": "DHL"}, headers={"If-Match": "7"}
    )
    assert stale.status_code == 409
    shipped = await client.post(
        f"/orders/{order['id']}/ship", json={"carrier": "DHL"}, headers={"If-Match": "1"}
    )
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped" and shipped.json()["version"] == 2
    again = await client.post(f"/orders/{order['id']}/ship", json={"carrier": "UPS"})
    assert again.status_code == 422  # a domain rule, not a server error

    found = await client.get("/orders", params={"min_total": "100"})
    assert [o["id"] for o in found.json()] == [order["id"]]
    placed_only = await client.get("/orders", params={"status": "placed"})
    assert [o["customer_id"] for o in placed_only.json()] == ["c-2"]

    # Two OrderPlaced and one OrderShipped went to the outbox with their aggregates.
    assert (await client.get("/outbox")).json() == {"pending": 3, "published": 0, "dead": 0}


async def test_example_fastapi_errors_are_http_statuses(client: httpx.AsyncClient) -> None:
    assert (await client.get("/orders/nope")).status_code == 404
    bad = await client.post("/orders", json={"customer_id": "c", "total": "-1"})
    assert bad.status_code == 422
