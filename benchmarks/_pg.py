"""A throw-away PostgreSQL schema for one workload: engine, asyncpg pool, cleanup.

Used by the peer, repository, jobs and subscriber benchmarks. The schema (``bench_<hex>``) holds
the library tables (``metadata.create_all``) and whatever the workload adds; it is dropped by the
harness's cleanup after the workload.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from benchmarks.harness import Context
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata


def dsn_of(url: str) -> str:
    """The libpq DSN (for asyncpg) of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class BenchDb:
    """``await BenchDb(ctx).open()``: schema + library tables + engine + asyncpg pool."""

    def __init__(self, ctx: Context, *, pool_size: int = 10, **engine_kw: Any) -> None:
        self.ctx = ctx
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.dsn = dsn_of(ctx.pg_url)
        self.pool_size = pool_size
        self.engine_kw = engine_kw
        self.engines: list[AsyncEngine] = []
        self.engine: AsyncEngine
        self.pool: asyncpg.Pool

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

    def make_engine(self, **kw: Any) -> AsyncEngine:
        """Another engine on the schema (e.g. with other engine options); disposed at close."""
        options: dict[str, Any] = {"pool_size": self.pool_size, **self.engine_kw, **kw}
        options["connect_args"] = {"server_settings": {"search_path": self.schema}}
        engine = create_engine(self.ctx.pg_url, **options)
        self.engines.append(engine)
        return engine

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
        if getattr(self, "pool", None) is not None:
            await self.pool.close()
        admin = await asyncpg.connect(self.dsn)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await admin.close()
