"""The test fixtures run the stack they claim: the driver of ``CQRS_TEST_POSTGRES_URL``, with the
per-test schema and connection settings in that driver's spelling (``scripts/test`` runs this
module on asyncpg and on psycopg)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import PG_URL, pg_connect_args, pg_engine_for, schema_of


@pytest.mark.postgres_only
async def test_engine_fixture_uses_the_configured_driver_and_its_own_schema(
    engine: AsyncEngine,
) -> None:
    assert engine.dialect.driver == make_url(PG_URL).get_driver_name()
    schema = schema_of(engine)
    async with engine.connect() as conn:
        search_path = (await conn.execute(text("SHOW search_path"))).scalar_one()
        await conn.execute(text("CREATE TABLE stack_probe (id integer)"))
        where = (
            await conn.execute(
                text("SELECT table_schema FROM information_schema.tables WHERE table_name = :t"),
                {"t": "stack_probe"},
            )
        ).scalar_one()
    assert search_path == f"{schema}, public"
    assert where == schema


async def test_server_settings_reach_the_server_whatever_the_driver(pg_schema: str) -> None:
    # a space and a backslash: libpq's ``options`` needs both escaped, asyncpg neither
    name = "stack probe \\ one"
    eng = pg_engine_for(pg_schema, connect_args={"server_settings": {"application_name": name}})
    try:
        async with eng.connect() as conn:
            got = (await conn.execute(text("SHOW application_name"))).scalar_one()
            path = (await conn.execute(text("SHOW search_path"))).scalar_one()
    finally:
        await eng.dispose()
    assert (got, path) == (name, f"{pg_schema}, public")


def test_connect_args_are_spelled_per_driver() -> None:
    url = "postgresql+{}://postgres@127.0.0.1/test"
    settings = {"search_path": "a, public"}
    asyncpg_args = pg_connect_args(url.format("asyncpg"), {"timeout": 5}, **settings)
    assert asyncpg_args == {"timeout": 5, "server_settings": settings}
    given = {"options": "-c jit=off", "server_settings": {"x.y": "1"}}
    psycopg_args = pg_connect_args(url.format("psycopg"), given, **settings)
    assert psycopg_args == {"options": "-c jit=off -c x.y=1 -c search_path=a,\\ public"}
    with pytest.raises(ValueError, match="pg8000"):
        pg_connect_args(url.format("pg8000"), **settings)
