"""A pinned connection whose backend is terminated (PostgreSQL, both drivers).

A worker loop holds one connection in autocommit for its single statements. When the server
ends that connection, the statements that meet the loss raise ``ConnectionLostError``; a
statement after that must still run in autocommit: each one committed on its own, never
inside a transaction nobody commits (SQLAlchemy reconnects an invalidated connection on its
next use without the isolation level set on the old one: the worker's claims and completions
then ran in one transaction left open, invisible to everyone else, and the jobs were never
done).
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import Column, MetaData, String, Table
from tests.conftest import pg_dsn, pg_engine_for

from cqrs_ddd_core.errors import ConnectionLostError
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, queue_columns
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION

pytestmark = pytest.mark.postgres_only


async def _terminate(application_name: str) -> int:
    conn = await asyncpg.connect(pg_dsn())
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            application_name,
        )
    finally:
        await conn.close()
    return len(rows)


async def _open_transactions(application_name: str) -> list[str]:
    conn = await asyncpg.connect(pg_dsn())
    try:
        rows = await conn.fetch(
            "SELECT left(query, 60) FROM pg_stat_activity WHERE application_name = $1 "
            "AND state = 'idle in transaction'",
            application_name,
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def test_statements_after_a_lost_pinned_connection_still_commit(pg_schema: str) -> None:
    rounds = 3
    name = f"pin-lost-{uuid.uuid4().hex[:8]}"
    engine = pg_engine_for(pg_schema, connect_args={"server_settings": {"application_name": name}})
    md = MetaData(naming_convention=NAMING_CONVENTION)
    table = Table("pin_items", md, *queue_columns(), Column("name", String(20), nullable=False))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
        queue = DurableQueue(table, engine, lease_seconds=60)
        await queue.enqueue([{"name": f"n{i}"} for i in range(rounds)])
        completed = 0
        async with queue.pinned():
            for _ in range(rounds):
                assert await _terminate(name) >= 1  # the pinned connection, idle
                await asyncio.sleep(0.05)  # the server has closed it
                for _attempt in range(5):
                    try:
                        claimed = await queue.claim(1)
                        assert (await queue.complete(claimed)).done == (claimed[0].id,)
                    except ConnectionLostError:
                        continue  # the statements that meet the loss say so
                    completed += 1
                    break
                # Committed on its own: visible to another connection right away.
                with queue.unpinned():
                    assert (await queue.stats()).done == completed
                assert await _open_transactions(name) == []
        assert completed == rounds
    finally:
        await engine.dispose()
