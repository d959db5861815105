"""``cqrs-ddd-sqla`` with driver parameters in the database URL, in subprocesses.

Parameters the driver accepts reach it (asyncpg's typed ``connect()`` options, libpq's
``options``, psycopg's ``prepare_threshold``); an unknown one or a wrong value is one line on
stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg
import pytest
from tests.acceptance.conftest import RunCli
from tests.conftest import pg_dsn


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture
def plain_url(pg_database: str) -> str:
    """The fresh database's URL as users write it: ``postgresql://`` (asyncpg added)."""
    return pg_database.replace("postgresql+asyncpg://", "postgresql://", 1)


def test_cli_url_statement_cache_size_reaches_asyncpg(run_cli: RunCli, plain_url: str) -> None:
    _ok(run_cli("schema", "create", "-d", plain_url))
    url = f"{plain_url}?statement_cache_size=0&command_timeout=30&application_name=cli-test"
    out = _ok(run_cli("outbox", "stats", "-d", url))
    assert "published" in out and "dead" in out


def test_cli_url_options_reach_the_server(run_cli: RunCli, plain_url: str) -> None:
    """``options=-c …`` become server settings: a read-only session cannot create tables."""
    read_only = f"{plain_url}?options=-c%20default_transaction_read_only%3Don"
    line = _one_line_error(run_cli("schema", "create", "-d", read_only))
    assert "read-only transaction" in line


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "statment_cache_size=0",
            "error: ConfigurationError: database URL parameter 'statment_cache_size' is not "
            "accepted by asyncpg (did you mean 'statement_cache_size'?); accepted: ",
        ),
        (
            "statement_cache_size=off",
            "error: ConfigurationError: database URL parameter statement_cache_size='off': "
            "expected a whole number",
        ),
    ],
)
def test_cli_url_bad_parameter_is_one_line(
    run_cli: RunCli, plain_url: str, query: str, expected: str
) -> None:
    line = _one_line_error(run_cli("outbox", "stats", "-d", f"{plain_url}?{query}"))
    assert line.startswith(expected), line


def test_cli_url_psycopg_parameters(run_cli: RunCli, pg_database: str) -> None:
    """psycopg 3: ``prepare_threshold`` converted, libpq parameters as they are, ``--schema``."""
    url = pg_database.replace("postgresql+asyncpg://", "postgresql+psycopg://", 1)

    async def create_schema() -> None:
        conn = await asyncpg.connect(pg_dsn(pg_database))
        try:
            await conn.execute("CREATE SCHEMA tenant")
        finally:
            await conn.close()

    asyncio.run(create_schema())
    settings = "prepare_threshold=0&application_name=cli-test&connect_timeout=5"
    out = _ok(run_cli("schema", "create", "--schema", "tenant", "-d", f"{url}?{settings}"))
    assert "created 8 table(s)" in out
    out = _ok(run_cli("outbox", "stats", "--schema", "tenant", "-d", f"{url}?{settings}"))
    assert "published" in out
    line = _one_line_error(run_cli("outbox", "stats", "-d", f"{url}?prepare_treshold=0"))
    assert "(did you mean 'prepare_threshold'?)" in line

    async def tables_in(schema: str) -> int:
        conn = await asyncpg.connect(pg_dsn(pg_database))
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema)
            )
        finally:
            await conn.close()

    assert asyncio.run(tables_in("tenant")) == 8
    assert asyncio.run(tables_in("public")) == 0
