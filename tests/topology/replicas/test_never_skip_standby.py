"""The global log never skips when a subscriber tails a standby while writers commit on the
primary.

The same workload as ``tests/reliability/event_store/test_es_never_skip.py``: 8 writers append
20,000 events across 200 streams in transactions of 1-10 events, some writing another table
first (their transaction id is older than their append), some rolling back. The subscriber's
event store is built on an engine of the standby alone, so every page it reads — and the
horizon ``pg_snapshot_xmin(pg_current_snapshot())`` that bounds the page — is the standby's:
its snapshot is the one hot standby builds from the primary's WAL (running transactions and
their ends, as replayed), which must hold back every transaction still running on the primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import pg_connect_args
from tests.never_skip import run_never_skip, side_md
from tests.topology.standby import Standby

from conftest import url_for
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

TOTAL = 20_000


@pytest.fixture
async def engines(
    standby: Standby, schema: str, driver: str
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """(the primary's engine, an engine of the standby alone) on the test's schema."""
    settings = {"search_path": f"{schema}, public"}
    primary_url, standby_url = url_for(driver), standby.url(driver)
    primary = create_engine(
        primary_url, connect_args=pg_connect_args(primary_url, **settings), pool_size=10
    )
    replica = create_engine(standby_url, connect_args=pg_connect_args(standby_url, **settings))
    try:
        async with primary.begin() as conn:
            await conn.run_sync(side_md.create_all)
        yield primary, replica
    finally:
        await replica.dispose()
        await primary.dispose()


async def test_a_subscriber_on_the_standby_sees_every_committed_event_exactly_once(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    primary, replica = engines
    async with replica.connect() as conn:
        assert (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar() is True
    session_factory = async_sessionmaker(primary, expire_on_commit=False)
    writes = SQLAlchemyEventStore(session_factory)
    # On the standby: no LISTEN there (NOTIFY is not replicated), a short poll instead.
    tails = SQLAlchemyEventStore(replica, listen=False, poll_interval=0.05)
    await run_never_skip(session_factory, writes, tails, total=TOTAL, catch_up_within=120)
