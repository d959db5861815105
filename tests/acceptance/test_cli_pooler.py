"""The CLI through PgBouncer in transaction mode: ``--pooler transaction`` /
``CQRS_POOLER=transaction`` with ``--schema`` and driver URL parameters; mistakes are one line.

Before pooler mode ``--schema`` through PgBouncer failed with ``unsupported startup parameter:
search_path`` and a ``?statement_cache_size=0`` in a CLI URL printed a traceback.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tests.acceptance.conftest import RunCli
from tests.conftest import pg_dsn
from tests.topology.pgbouncer import Bouncer

QUERY = {"asyncpg": "?statement_cache_size=0&command_timeout=30", "psycopg": "?sslmode=disable"}


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_cli_commands_through_pgbouncer(
    pgbouncer: Bouncer, pg_database: str, run_cli: RunCli, driver: str
) -> None:
    admin = await asyncpg.connect(pg_dsn(pg_database))
    try:
        await admin.execute('CREATE SCHEMA "app"')
    finally:
        await admin.close()
    url = make_url(pgbouncer.url(pg_database)).set(drivername=f"postgresql+{driver}")
    pooled = url.render_as_string(hide_password=False) + QUERY[driver]

    created = run_cli(
        "schema", "create", "-d", pooled, "--schema", "app", CQRS_POOLER="transaction"
    )
    assert created.returncode == 0, created.stderr
    checked = run_cli("schema", "check", "-d", pooled, "--schema", "app", "--pooler", "transaction")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # the tables are in schema app, not public: the search path held through the pooler
    admin = await asyncpg.connect(pg_dsn(pg_database))
    try:
        where = await admin.fetchval(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'cqrs_events'"
        )
    finally:
        await admin.close()
    assert where == "app"

    for args, message in [
        (("--pooler", "session"), "not a pooler mode"),
        (("--pooler", "transaction", "-d", pooled + "&statment_timeout=5"), "statment_timeout"),
    ]:
        if "-d" not in args:
            args = (*args, "-d", pooled)
        done = run_cli("schema", "check", "--schema", "app", *args)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert message in done.stderr
