"""Fixtures of the read-replica tests: a real streaming standby of the test server
(``tests/topology/standby.py``), made once per session, and engines routing to it.

Every test runs on asyncpg and on psycopg 3 (the ``driver`` parameter): these tests are in
neither stack's default paths but the default stack's, so they carry the driver themselves.
Under ``REQUIRE_POSTGRES=1`` a standby that cannot be made fails the tests (it never skips).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import PG_URL, _admin, pg_connect_args, require_postgres
from tests.topology.standby import Standby, make_standby

from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata

# This directory's helper modules (the suite runs with --import-mode=importlib).
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

DRIVERS = ("asyncpg", "psycopg")


def url_for(driver: str, url: str = PG_URL) -> str:
    return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(False)


@pytest.fixture(scope="session")
def standby_server() -> Iterator[Standby]:
    """One hot standby of the test server for the session (removed at its end)."""
    require_postgres()
    server = make_standby(PG_URL)
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def standby(standby_server: Standby) -> Iterator[Standby]:
    """The session's standby, running and without replay delay when the test begins and
    after it ends (a test may stop it or delay it)."""
    standby_server.start()
    try:
        yield standby_server
    finally:
        standby_server.start()
        standby_server.set_delay(0)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def schema(standby: Standby) -> AsyncIterator[str]:
    """A fresh schema with the library's tables, replayed on the standby."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE SCHEMA "{name}"')
    engine = create_engine(PG_URL, connect_args=pg_connect_args(PG_URL, search_path=name))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()
    standby.wait_replayed()
    try:
        yield name
    finally:
        await _admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


EngineFactory = Callable[..., AsyncEngine]


@pytest.fixture
async def routed(standby: Standby, schema: str, driver: str) -> AsyncIterator[EngineFactory]:
    """``routed(**kwargs)``: ``create_engine(primary, replicas=[standby], ...)`` on the test's
    schema and driver (disposed after the test)."""
    made: list[AsyncEngine] = []

    def make(**kwargs: Any) -> AsyncEngine:
        url = url_for(driver)
        kwargs.setdefault("replica_check_interval", 0.2)
        engine = create_engine(
            url,
            replicas=[standby.url(driver)],
            connect_args=pg_connect_args(url, search_path=f"{schema}, public"),
            **kwargs,
        )
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            await engine.dispose()
