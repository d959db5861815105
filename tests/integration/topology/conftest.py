"""Engines through PgBouncer in transaction mode (``create_engine(..., pooler="transaction")``).

``engine`` is overridden here: every test of this directory runs through the session's
PgBouncer (``tests/conftest.py::pgbouncer``), on the driver of ``CQRS_TEST_POSTGRES_URL`` (the
stacks run it on asyncpg and on psycopg), isolated in a fresh schema given as ``search_path``
— a server setting PgBouncer refuses at connect, applied per transaction in pooler mode.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import PG_URL, _admin, pg_connect_args
from tests.topology.pgbouncer import Bouncer

from cqrs_ddd_persistence_sqlalchemy import create_engine


@pytest.fixture
async def pooled_schema(pgbouncer: Bouncer) -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pooled_engine(bouncer: Bouncer, schema: str, **kwargs: object) -> AsyncEngine:
    """An engine through ``bouncer`` in pooler mode, working in ``schema``."""
    connect_args = pg_connect_args(PG_URL, search_path=f"{schema}, public")
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(
        bouncer.url(PG_URL), pooler="transaction", connect_args=connect_args, **kwargs
    )


@pytest.fixture
def dialect_name() -> str:
    return "postgresql"


@pytest.fixture
async def engine(pgbouncer: Bouncer, pooled_schema: str) -> AsyncIterator[AsyncEngine]:
    eng = pooled_engine(pgbouncer, pooled_schema)
    try:
        yield eng
    finally:
        await eng.dispose()
