"""docs/alembic-example: applying its migrations gives exactly the schema of ``create_all``.

Its migration was written by autogenerate with the example's ``env.py`` and Alembic's stock
template, without edits; the same file applies on PostgreSQL and SQLite. The user's whole path
(``alembic init``, autogenerate, upgrade, downgrade) is tests/acceptance/test_alembic_user_path.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from tests.conftest import PG_URL, pg_dsn, require_postgres

from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.alembic import include_object, library_table_names
from cqrs_ddd_persistence_sqlalchemy.cli.schema import schema_differences

EXAMPLE = Path(__file__).parents[3] / "docs" / "alembic-example"


def _admin(sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(pg_dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (migrations manage a whole database, alembic_version too)."""
    require_postgres()
    name = f"alembic_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _config(url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("CQRS_DATABASE_URL", url)
    cfg = Config(str(EXAMPLE / "alembic.ini"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _inspect(url: str, fn: Any) -> Any:
    async def go() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _diffs(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"include_object": include_object, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


def test_alembic_upgrade_equals_create_all_on_postgres(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    command.upgrade(_config(pg_url, monkeypatch), "head")
    assert _inspect(pg_url, _diffs) == []
    assert _inspect(pg_url, lambda c: schema_differences(c, metadata)) == []


def test_alembic_create_all_has_no_diffs_on_postgres(pg_url: str) -> None:
    """The comparison itself is sound: ``create_all`` compared with the models is clean."""

    async def create() -> None:
        engine = create_engine(pg_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        finally:
            await engine.dispose()

    asyncio.run(create())
    assert _inspect(pg_url, _diffs) == []


def test_alembic_downgrade_removes_every_library_table(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(pg_url, monkeypatch)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    remaining = set(_inspect(pg_url, lambda c: sa_inspect(c).get_table_names()))
    assert remaining & library_table_names() == set()


def test_alembic_upgrade_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    command.upgrade(_config(url, monkeypatch), "head")
    assert _inspect(url, lambda c: schema_differences(c, metadata)) == []


def test_alembic_include_object_keeps_unknown_and_postgis_tables() -> None:
    assert include_object(None, "spatial_ref_sys", "table", True, None) is False
    assert include_object(None, "order_summaries", "table", True, None) is False
    assert include_object(None, "events", "table", False, None) is True
