"""Shared fixtures: engines parametrised over SQLite and PostgreSQL, isolated per test.

- SQLite: a temporary database file per test.
- PostgreSQL: a fresh schema per test (``search_path = <schema>, public``; PostGIS lives in
  ``public``), dropped afterwards. URL, and with it the driver under test (asyncpg or psycopg),
  from ``CQRS_TEST_POSTGRES_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``;
  under pytest-xdist ``CQRS_TEST_POSTGRES_URLS`` may give each worker a server of its own);
  :func:`pg_connect_args` spells per-connection settings for that driver. Administration (probe,
  schemas) always goes through asyncpg: a test helper, not the stack under test.
- Helper processes import this module as ``conftest`` (``tests/`` on ``sys.path``): it imports
  nothing from ``tests``.
- ``REQUIRE_POSTGRES=1`` turns an unreachable server into a failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import uuid
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.kafka_broker import kafka_bootstrap as kafka_bootstrap  # the session's Kafka broker
from tests.topology.pgbouncer import Bouncer, running_pgbouncer

from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _pg_url() -> str:
    # CQRS_TEST_POSTGRES_URLS: one server per pytest-xdist worker (gwN takes the N-th, modulo),
    # so that no worker's open transactions hold back another's event-store horizon
    # (scripts/pg_spare.py). Helper processes inherit PYTEST_XDIST_WORKER: same server.
    urls = os.environ.get("CQRS_TEST_POSTGRES_URLS", "").split()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if urls and worker.startswith("gw") and worker[2:].isdigit():
        return urls[int(worker[2:]) % len(urls)]
    return os.environ.get("CQRS_TEST_POSTGRES_URL", DEFAULT_PG_URL)


PG_URL = _pg_url()
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
_pg_status: dict[str, Any] = {}
_SCHEMAS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def schema_of(engine: AsyncEngine) -> str | None:
    """The PostgreSQL schema an ``engine`` fixture isolates its test in (None on SQLite)."""
    return _SCHEMAS.get(engine.sync_engine)


def pg_dsn(url: str = PG_URL) -> str:
    """The plain libpq DSN for asyncpg of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_connect_args(
    url: str = PG_URL, connect_args: Mapping[str, Any] | None = None, **settings: str
) -> dict[str, Any]:
    """``connect_args`` for ``url``'s driver, with the server ``settings`` added.

    Tests isolate themselves in a schema (``search_path``) and find their own backends by
    ``application_name``: server settings given at connect time (a ``SET`` on a pooled
    connection would not do: the pool's rollback on return undoes it), which asyncpg takes as
    ``server_settings={...}`` and psycopg (libpq) as ``options="-c name=value ..."``.
    ``connect_args`` may hold asyncpg's ``server_settings`` (the spelling tests use); its
    entries are merged with ``settings`` (which win) and re-spelled for the driver.

    Example::

        create_engine(PG_URL, connect_args=pg_connect_args(search_path=f"{schema}, public"))
    """
    args = dict(connect_args or {})
    merged = {**args.pop("server_settings", {}), **settings}
    if not merged:
        return args
    driver = make_url(url).get_driver_name()
    if driver == "asyncpg":
        args["server_settings"] = merged
    elif driver in ("psycopg", "psycopg_async"):
        options = [args.pop("options")] if args.get("options") else []
        options += [f"-c {name}={_libpq_escape(str(value))}" for name, value in merged.items()]
        args["options"] = " ".join(options)
    else:
        raise ValueError(f"server settings for the {driver!r} driver are not supported: {url}")
    return args


def _libpq_escape(value: str) -> str:
    # libpq splits ``options`` on whitespace; a backslash escapes the next character.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


async def _probe() -> str | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(pg_dsn()), 5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except asyncpg.UniqueViolationError:
            pass  # another session created it at the same moment
        except asyncpg.PostgresError as exc:  # PostGIS package missing: reported, not fatal
            _pg_status["postgis_error"] = str(exc)
        _pg_status["postgis"] = bool(
            await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'")
        )
    finally:
        await conn.close()
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport() -> Generator[None, Any, Any]:
    """No garbage collection while a report (its traceback) is built.

    CPython before 3.11.5 (gh-106905) raises ``SystemError: AST constructor recursion depth
    mismatch`` from ``ast.parse`` — which pytest calls to show a failure's source — when a
    collection in the middle of it finalizes a leaked SQLAlchemy async connection (a greenlet
    switch): pytest then aborts the whole run with INTERNALERROR. Debian 12's python3 is 3.11.2.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    finally:
        if enabled:
            gc.enable()


def pytest_configure(config: pytest.Config) -> None:
    _pg_status["error"] = asyncio.run(_probe())


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Warn when several xdist workers share one PostgreSQL cluster: a test holding a
    transaction open on purpose (the horizon tests, the dashboard's) then holds back every other
    worker's event-store readers, whose tests time out (``scripts/test`` gives each worker a
    cluster of its own: ``scripts/pg_spare.py``)."""
    workers = getattr(config.option, "numprocesses", None)
    clusters = len(set(os.environ.get("CQRS_TEST_POSTGRES_URLS", "").split())) or 1
    if workers in (None, 0, 1) or (isinstance(workers, int) and workers <= clusters):
        return []
    return [
        f"WARNING: {workers} xdist workers on {clusters} PostgreSQL cluster(s): event-store "
        "reads may wait for another worker's open transaction; run ./scripts/test (a cluster "
        "per worker) or set CQRS_TEST_POSTGRES_URLS"
    ]


def postgres_error() -> str | None:
    return _pg_status.get("error")


def has_postgis() -> bool:
    return bool(_pg_status.get("postgis"))


def require_postgres() -> None:
    """Skip (or fail under REQUIRE_POSTGRES=1) when PostgreSQL is unreachable."""
    error = postgres_error()
    if error is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL required (REQUIRE_POSTGRES=1) but unreachable: {error}")
    pytest.skip(f"PostgreSQL unreachable: {error}")


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "sqlite" and request.node.get_closest_marker("postgres_only"):
        pytest.skip("PostgreSQL-only test")
    if name == "postgresql" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("SQLite-only test")
    if name == "postgresql":
        require_postgres()
        if request.node.get_closest_marker("asyncpg_only") and (
            make_url(PG_URL).get_driver_name() != "asyncpg"
        ):
            # The stacks deselect these (-m "not asyncpg_only"); a run by hand says why.
            pytest.skip("a test of the asyncpg fast path: the URL names another driver")
    return name


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(pg_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped after the test."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_engine_for(schema: str, **kwargs: Any) -> AsyncEngine:
    """An engine on ``CQRS_TEST_POSTGRES_URL`` whose connections use ``schema`` first (then
    ``public`` for PostGIS). ``connect_args`` may carry asyncpg-style ``server_settings``; they
    are passed in the spelling of the URL's driver."""
    connect_args = pg_connect_args(
        PG_URL, kwargs.pop("connect_args", None), search_path=f"{schema}, public"
    )
    return create_engine(PG_URL, connect_args=connect_args, **kwargs)


@pytest.fixture
async def engine(
    dialect_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[AsyncEngine]:
    """An empty, isolated database for one test (SQLite file or PostgreSQL schema)."""
    if dialect_name == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        try:
            yield eng
        finally:
            await eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE SCHEMA "{schema}"')
    eng = pg_engine_for(schema, pool_size=10, max_overflow=20)
    _SCHEMAS[eng.sync_engine] = schema
    try:
        yield eng
    finally:
        await eng.dispose()
        await _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
async def library_tables(engine: AsyncEngine) -> AsyncEngine:
    """Create every library table in the test database."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[Bouncer]:
    """A PgBouncer in transaction mode in front of the test server, for the session (see
    ``tests/topology/pgbouncer.py``). Under ``REQUIRE_POSTGRES=1`` one that cannot start is a
    failure, not a skip."""
    require_postgres()
    with contextlib.ExitStack() as stack:
        try:
            bouncer = stack.enter_context(running_pgbouncer(PG_URL))
        except RuntimeError as exc:
            if REQUIRE_POSTGRES:
                pytest.fail(f"PgBouncer required (REQUIRE_POSTGRES=1) but it did not start: {exc}")
            pytest.skip(f"no PgBouncer: {exc}")
        yield bouncer


class DatabaseUrl:
    """Where several processes or engines of one test meet: the ``library_tables`` database as
    a URL (PostgreSQL: the test's schema; SQLite: the test's file), plus keyword arguments of
    ``create_engine`` (JSON values). The ``database_url`` fixture gives it, so that a test taking
    it can be run through another route to the same database (e.g. a pooler, with the engine
    options it needs) by parametrising that fixture."""

    def __init__(
        self, url: str, schema: str | None, engine_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        self.schema = schema
        self.engine_options = dict(engine_options or {})

    def engine(self, **kwargs: Any) -> AsyncEngine:
        """A new engine on the database (the caller disposes of it)."""
        kwargs = {**self.engine_options, **kwargs}
        if self.schema is not None:
            kwargs["connect_args"] = pg_connect_args(
                self.url, kwargs.pop("connect_args", None), search_path=f"{self.schema}, public"
            )
        return create_engine(self.url, **kwargs)

    def argv(self) -> list[str]:
        """``[url, schema or "-", engine options as JSON]``: how helper processes are told
        (:meth:`from_argv`)."""
        return [self.url, self.schema or "-", json.dumps(self.engine_options)]

    @classmethod
    def from_argv(cls, url: str, schema: str, engine_options: str = "{}") -> DatabaseUrl:
        return cls(url, None if schema == "-" else schema, json.loads(engine_options))


@pytest.fixture
def database_url(library_tables: AsyncEngine, dialect_name: str) -> DatabaseUrl:
    """The test's database (with the library tables) as a :class:`DatabaseUrl`."""
    if dialect_name == "postgresql":
        return DatabaseUrl(PG_URL, schema_of(library_tables))
    return DatabaseUrl(library_tables.url.render_as_string(hide_password=False), None)
