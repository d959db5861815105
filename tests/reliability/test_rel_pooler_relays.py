"""Two ``cqrs-ddd-sqla outbox relay --pooler transaction`` processes through PgBouncer in
transaction mode drain 5,000 messages: none lost, none published twice, both exit 0.

On asyncpg and psycopg 3, in a schema of its own (``--schema``: ``search_path`` applied per
transaction). Before pooler mode one relay of two runs exited 1 with ``prepared statement
"__asyncpg_stmt_5__" already exists``, and ``--schema`` was refused by PgBouncer
(``unsupported startup parameter: search_path``).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from asyncio.subprocess import PIPE
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from tests.acceptance.conftest import CLI, cli_env
from tests.conftest import PG_URL, _admin, pg_connect_args, require_postgres
from tests.topology.pgbouncer import Bouncer

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
    outbox_table,
)

TOTAL = 5000
SCHEMA = "app"
_PUBLISHED = re.compile(r"publish Moved (\S+) ")


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh database with schema ``app`` (dropped afterwards); the URL's driver is the test
    URL's."""
    require_postgres()
    name = f"pool_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_two_relay_processes_through_pgbouncer(
    pgbouncer: Bouncer, database: str, driver: str
) -> None:
    direct = make_url(PG_URL).set(drivername=f"postgresql+{driver}", database=database)
    direct_url = direct.render_as_string(hide_password=False)
    writer = create_engine(
        direct_url, connect_args=pg_connect_args(direct_url, search_path=f"{SCHEMA}, public")
    )
    try:
        async with writer.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{SCHEMA}"')
            await conn.exec_driver_sql(f'SET LOCAL search_path = "{SCHEMA}", public')
            await conn.run_sync(metadata.create_all)
        sf = async_sessionmaker(writer, expire_on_commit=False)
        outbox = SQLAlchemyOutboxStorage(writer)
        messages = [
            OutboxMessage(event_type="Moved", payload={"n": n}, partition_key=f"a{n % 50}")
            for n in range(TOTAL)
        ]
        for i in range(0, TOTAL, 1000):
            async with SQLAlchemyUnitOfWork(sf) as uow:
                await outbox.save_messages(messages[i : i + 1000], uow=uow)
                await uow.commit()

        pooled_url = pgbouncer.url(direct_url)
        command = [
            str(CLI), "outbox", "relay", "--once", "--pooler", "transaction",
            "--schema", SCHEMA, "--batch-size", "50", "--relays", "2",
        ]  # fmt: skip
        procs = [
            await asyncio.create_subprocess_exec(
                *command, stdout=PIPE, stderr=PIPE, env=cli_env(CQRS_DATABASE_URL=pooled_url)
            )
            for _ in range(2)
        ]
        outputs = []
        try:
            for proc in procs:
                outputs.append(await asyncio.wait_for(proc.communicate(), 300))
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        published: Counter[str] = Counter()
        per_process = []
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            log = err.decode()
            assert proc.returncode == 0, log[-2000:]
            assert "prepared statement" not in log
            ids = _PUBLISHED.findall(log)
            per_process.append(len(ids))
            published.update(ids)
        assert set(published) == {m.message_id for m in messages}  # none lost
        assert max(published.values()) == 1  # none published twice
        assert all(per_process), per_process  # both relays took part
        async with writer.connect() as conn:
            left = await conn.scalar(
                select(func.count())
                .select_from(outbox_table)
                .where(outbox_table.c.finished_at.is_(None))
            )
        assert left == 0
    finally:
        await writer.dispose()
