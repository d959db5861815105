"""A synchronous harness over a real database (for hypothesis, which drives sync tests).

Each harness owns an event loop (``asyncio.Runner``) and an engine on an isolated database: a
temporary SQLite file, or a fresh PostgreSQL schema (dropped afterwards) on the test server.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from tests.conftest import PG_URL, pg_connect_args

T = TypeVar("T")


class Harness:
    def __init__(self, runner: asyncio.Runner, engine: AsyncEngine, dialect: str) -> None:
        self.runner = runner
        self.engine = engine
        self.dialect = dialect

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        return self.runner.run(_call(make))

    def ids(self, stmt: sa.Select[Any]) -> set[int]:
        async def go() -> set[int]:
            async with self.engine.connect() as conn:
                return set((await conn.execute(stmt)).scalars())

        return self.run(go)


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _with_spatialite(runner: asyncio.Runner, engine: AsyncEngine) -> AsyncEngine:
    """``engine`` with SpatiaLite loaded (``enable_spatialite``), or skip — fail under
    ``REQUIRE_SPATIALITE=1`` (CI installs it) — when this Python or machine cannot load it."""
    import pytest

    from cqrs_ddd_core.errors import ConfigurationError
    from cqrs_ddd_persistence_sqlalchemy.types import enable_spatialite

    enable_spatialite(engine)

    async def probe() -> None:
        async with engine.connect():
            pass

    try:
        runner.run(probe())
    except ConfigurationError as exc:
        runner.run(engine.dispose())
        if os.environ.get("REQUIRE_SPATIALITE") == "1":
            pytest.fail(f"SpatiaLite required (REQUIRE_SPATIALITE=1): {exc}")
        pytest.skip(f"SpatiaLite unavailable: {exc}")
    return engine


@contextmanager
def harness(
    dialect: str, tmp_path: Path, setup: Callable[[AsyncConnection], Awaitable[None]]
) -> Iterator[Harness]:
    with asyncio.Runner() as runner:
        if dialect in ("sqlite", "spatialite"):
            engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'spec.db'}")
            schema = None
            if dialect == "spatialite":
                engine = _with_spatialite(runner, engine)
        else:
            schema = f"spec_{uuid.uuid4().hex[:12]}"
            admin = create_async_engine(PG_URL)

            async def create() -> None:
                async with admin.begin() as conn:
                    await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                    await conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))

            try:
                runner.run(create())
            except Exception as exc:
                runner.run(admin.dispose())
                if os.environ.get("REQUIRE_POSTGRES") == "1":
                    raise
                import pytest

                pytest.skip(f"PostgreSQL unavailable: {exc}")
            engine = create_async_engine(
                PG_URL, connect_args=pg_connect_args(PG_URL, search_path=f"{schema}, public")
            )

        async def prepare() -> None:
            async with engine.begin() as conn:
                await setup(conn)

        try:
            runner.run(prepare())
            yield Harness(runner, engine, dialect)
        finally:
            runner.run(engine.dispose())
            if schema is not None:

                async def drop() -> None:
                    async with admin.begin() as conn:
                        await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                    await admin.dispose()

                runner.run(drop())
