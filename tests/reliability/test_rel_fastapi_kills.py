"""The example FastAPI service under backend kills: every request gets an HTTP response.

``examples/fastapi_order_service`` runs under uvicorn in a subprocess (``rel_fastapi_server.py``)
on PostgreSQL (asyncpg). Concurrent clients place, read, ship and search orders over keep-alive
connections while every backend of the service is terminated every 50-100 ms. Each request must
get a response: 2xx/4xx, or a clean 5xx when its transaction died (503: ``ConnectionLostError``,
retryable). None may end without one (a connection closed under it, ``RemoteProtocolError``),
which is what happened when the unit of work's exit raised after the response had started.
After the kills stop, requests succeed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import PG_URL
from tests.reliability.rel_faults import admin_connect, app_name, soak

pytestmark = pytest.mark.postgres_only

SERVER = Path(__file__).with_name("rel_fastapi_server.py")
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 12
KILL_SECONDS = soak(5.0, 60.0)


class Load:
    """What the clients saw: status codes, and requests that got no response."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.no_response: list[str] = []

    async def request(
        self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:  # RemoteProtocolError, ReadError, timeouts...
            self.no_response.append(f"{method} {url}: {exc!r}")
            return None
        self.statuses[response.status_code] += 1
        return response


async def _round(
    client: httpx.AsyncClient, load: Load, rng: random.Random, seeded: list[str]
) -> None:
    """Place an order and ship it; read seeded orders and search in between (mostly reads:
    a read-only request is the one whose unit of work ends after its response started)."""
    total = f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
    body = {"customer_id": "c", "total": total}
    placed = await load.request(client, "POST", "/orders", json=body)
    for _ in range(4):
        await load.request(client, "GET", f"/orders/{rng.choice(seeded)}")
    await load.request(client, "GET", "/orders", params={"status": "placed", "limit": "5"})
    if placed is not None and placed.status_code == 201:
        order = placed.json()
        headers = {"If-Match": str(order["version"])}
        await load.request(
            client, "POST", f"/orders/{order['id']}/ship", json={"carrier": "DHL"}, headers=headers
        )


async def _clients(base_url: str, load: Load, seeded: list[str], until: float) -> None:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def one(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < until:
                await _round(client, load, rng, seeded)

        await asyncio.gather(*(one(i) for i in range(CLIENTS)))


async def _seed(base_url: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        ids = []
        for i in range(count):
            placed = await client.post("/orders", json={"customer_id": f"s{i}", "total": "10.00"})
            assert placed.status_code == 201, placed.text
            ids.append(placed.json()["id"])
    return ids


async def _kill_repeatedly(name: str, stop: asyncio.Event) -> int:
    """Terminate every backend named ``name`` every 50-100 ms until ``stop``; how many."""
    rng = random.Random(7)
    killed = 0
    admin = await admin_connect()
    try:
        while not stop.is_set():
            killed += await admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                name,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(0.05, 0.1))
    finally:
        await admin.close()
    return killed


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _start(pg_schema: str, name: str, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SERVER), PG_URL, pg_schema, name,
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.startswith(b"port "), (line, _read(log))
    base_url = f"http://127.0.0.1:{int(line.split()[1])}"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while True:  # up once the lifespan (create_all) is done
            try:
                if (await client.get("/outbox")).status_code == 200:
                    return proc, base_url
            except httpx.HTTPError:
                pass
            assert proc.returncode is None, _read(log)
            assert time.monotonic() < deadline, _read(log)
            await asyncio.sleep(0.1)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()  # uvicorn's graceful shutdown
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_rel_fastapi_service_answers_every_request_under_backend_kills(
    pg_schema: str, tmp_path: Path
) -> None:
    name = app_name("rel-api")
    log = tmp_path / "server.log"
    proc, base_url = await _start(pg_schema, name, log)
    try:
        seeded = await _seed(base_url, 10)
        load = Load()
        stop = asyncio.Event()
        killer = asyncio.create_task(_kill_repeatedly(name, stop))
        try:
            await _clients(base_url, load, seeded, time.monotonic() + KILL_SECONDS)
        finally:
            stop.set()
            killed = await killer
        # The kills are over: every request succeeds again.
        after = Load()
        await _clients(base_url, after, seeded, time.monotonic() + 1.0)
    finally:
        await _stop(proc)
    server_log = _read(log)
    summary = f"statuses {dict(load.statuses)}, {killed} backends killed"
    assert load.no_response == [], f"{len(load.no_response)} without response; {summary}"
    assert "response already started" not in server_log, server_log[-3000:]
    assert set(load.statuses) <= {200, 201, 409, 422, 500, 503}, summary
    failed = sum(n for status, n in load.statuses.items() if status >= 500)
    assert failed > 0, f"the kills never reached a transaction: {summary}"
    assert load.statuses[200] + load.statuses[201] > 0, f"nothing succeeded: {summary}"
    assert after.no_response == [] and set(after.statuses) <= {200, 201}, after.statuses
    assert after.statuses[201] > 0
