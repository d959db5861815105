"""A throw-away PostgreSQL schema for one workload: engines, raw connections, cleanup.

Used by the event store, peer, repository, jobs, unit-of-work and subscriber benchmarks. The
schema (``bench_<hex>``) holds the library tables (``metadata.create_all``) and whatever the
workload adds; it is dropped by the harness's cleanup after the workload.

psycopg 3 is optional: ``psycopg_url`` is ``None`` without it (and prints why), and a workload
then measures its asyncpg variants only. Raw psycopg code reads its ``$n`` statements through
``PsycopgSql``, so that both raw baselines send the same statement text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from benchmarks.harness import Context
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata

#: The names every workload gives its psycopg variants (``compare=PSYCOPG_COMPARE``).
OURS_PSYCOPG = "ours (psycopg)"
RAW_PSYCOPG = "raw psycopg"
PSYCOPG_COMPARE = ((OURS_PSYCOPG, RAW_PSYCOPG),)


def dsn_of(url: str) -> str:
    """The libpq DSN (for asyncpg and psycopg) of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def psycopg_url(url: str) -> str | None:
    """``url`` on SQLAlchemy's psycopg 3 dialect, or ``None`` (with a printed note) when psycopg
    is not importable: the workload then runs without its psycopg variants."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("  note: psycopg not installed, its variants are skipped", flush=True)
        return None
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def search_path_args(url: str, schema: str) -> dict[str, Any]:
    """``connect_args`` that put ``schema`` on the search path, in the URL's driver's terms."""
    if make_url(url).get_driver_name() == "psycopg":
        return {"options": f"-csearch_path={schema}"}
    return {"server_settings": {"search_path": schema}}


async def connect_psycopg(url: str, schema: str) -> Any:
    """A raw psycopg connection on ``schema``, in autocommit (a statement outside
    ``conn.transaction()`` commits alone, as on asyncpg), returning ``json``/``jsonb`` as text
    as asyncpg does, so that a raw baseline decodes JSON with the same call on both drivers."""
    import psycopg
    from psycopg.types.string import TextLoader

    conn = await psycopg.AsyncConnection.connect(
        dsn_of(url), autocommit=True, options=f"-csearch_path={schema}"
    )
    conn.adapters.register_loader("json", TextLoader)
    conn.adapters.register_loader("jsonb", TextLoader)
    return conn


class PsycopgSql:
    """An asyncpg statement (``$1``, ``$2``, ...) in psycopg's ``%s`` style.

    ``$n`` may repeat or come out of order in asyncpg's style; ``args`` / ``rows`` put the
    arguments in the order the ``%s`` placeholders need (as given when they already are).
    """

    def __init__(self, sql: str) -> None:
        order: list[int] = []

        def placeholder(match: re.Match[str]) -> str:
            order.append(int(match.group(1)) - 1)
            return "%s"

        self.sql = re.sub(r"\$(\d+)", placeholder, sql.replace("%", "%%"))
        self._order = tuple(order)
        self._in_order = self._order == tuple(range(len(order)))

    def args(self, *values: Any) -> Sequence[Any]:
        return values if self._in_order else tuple(values[i] for i in self._order)

    def rows(self, rows: Iterable[Sequence[Any]]) -> Iterable[Sequence[Any]]:
        return rows if self._in_order else [self.args(*r) for r in rows]


class BenchDb:
    """``await BenchDb(ctx).open()``: schema + library tables + engine + asyncpg pool.

    ``make_psycopg_engine()`` and ``psycopg_connections(n)`` give the same schema on psycopg 3.
    """

    def __init__(self, ctx: Context, *, pool_size: int = 10, **engine_kw: Any) -> None:
        self.ctx = ctx
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.dsn = dsn_of(ctx.pg_url)
        self.pool_size = pool_size
        self.engine_kw = engine_kw
        self.engines: list[AsyncEngine] = []
        self.engine: AsyncEngine
        self.pool: asyncpg.Pool
        self._psycopg_conns: list[Any] = []

    @property
    def url_parts(self) -> dict[str, Any]:
        url = make_url(self.ctx.pg_url)
        return {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username or "postgres",
            "password": url.password or "",
            "database": url.database or "postgres",
        }

    def make_engine(self, *, url: str | None = None, **kw: Any) -> AsyncEngine:
        """Another engine on the schema (other engine options, or another driver's ``url``);
        disposed at close."""
        url = url or self.ctx.pg_url
        options: dict[str, Any] = {"pool_size": self.pool_size, **self.engine_kw, **kw}
        options["connect_args"] = search_path_args(url, self.schema)
        engine = create_engine(url, **options)
        self.engines.append(engine)
        return engine

    def make_psycopg_engine(self, **kw: Any) -> AsyncEngine | None:
        """An engine on the schema through psycopg 3, or ``None`` without psycopg."""
        url = psycopg_url(self.ctx.pg_url)
        return None if url is None else self.make_engine(url=url, **kw)

    async def psycopg_connections(self, n: int = 1) -> list[Any]:
        """``n`` raw psycopg connections (``connect_psycopg``), opened at the first call and
        held until close, as the asyncpg pool's are: their prepared statements stay warm."""
        while len(self._psycopg_conns) < n:
            self._psycopg_conns.append(await connect_psycopg(self.ctx.pg_url, self.schema))
        return self._psycopg_conns[:n]

    def session_factory(self, engine: AsyncEngine | None = None) -> Any:
        return async_sessionmaker(engine or self.engine, expire_on_commit=False)

    async def open(self, *, extra_metadata: Any = None) -> BenchDb:
        admin = await asyncpg.connect(self.dsn)
        try:
            await admin.execute(f'CREATE SCHEMA "{self.schema}"')
        finally:
            await admin.close()
        self.ctx.cleanup.append(self.close)
        self.engine = self.make_engine()
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            if extra_metadata is not None:
                await conn.run_sync(extra_metadata.create_all)
        self.pool = await asyncpg.create_pool(
            self.dsn,
            min_size=2,
            max_size=self.pool_size,
            server_settings={"search_path": self.schema},
        )
        return self

    async def close(self) -> None:
        for engine in self.engines:
            await engine.dispose()
        for conn in self._psycopg_conns:
            await conn.close()
        if getattr(self, "pool", None) is not None:
            await self.pool.close()
        admin = await asyncpg.connect(self.dsn)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await admin.close()
