"""A stuck transaction elsewhere in the cluster (PostgreSQL): the event store's commit-safe
horizon stalls, global readers return promptly without the held-back events (never a hang, never
a skip), and the stall is visible — in ``horizon_lag()`` and in ``cqrs-ddd-sqla health``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from tests.conftest import PG_URL, schema_of
from tests.reliability.rel_faults import admin_connect

from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.cli.health import Thresholds, collect
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

pytestmark = pytest.mark.postgres_only
CLI = Path(sys.executable).parent / "cqrs-ddd-sqla"


async def test_rel_stuck_transaction_stalls_horizon_visibly(
    library_tables: AsyncEngine, dialect_name: str
) -> None:
    engine = library_tables
    store = SQLAlchemyEventStore(async_sessionmaker(engine, expire_on_commit=False), listen=False)
    stuck = await admin_connect()
    try:
        tx = stuck.transaction()
        await tx.start()
        await stuck.fetchval("SELECT pg_current_xact_id()")  # holds the horizon back
        ids = [f"held-{i}" for i in range(5)]
        await store.append(
            [StoredEvent(event_type="Held", aggregate_id="s", event_id=i) for i in ids]
        )
        started = time.monotonic()
        page, _ = await asyncio.wait_for(store.read_all(limit=100), 10)
        assert time.monotonic() - started < 5  # prompt, not a wait for the horizon
        assert not {e.event_id for e in page} & set(ids)  # held back, not skipped (below)
        await asyncio.sleep(1.2)
        status = await store.horizon_lag()
        assert status.invisible_events >= len(ids)
        assert status.oldest_xact_age_s is not None and status.oldest_xact_age_s >= 1.0
        checks = await collect(engine, Thresholds(warn_s=0.5, fail_s=3600))
        (horizon,) = [c for c in checks if c.component == "event store"]
        assert horizon.status == "warn", horizon
        assert "above the horizon" in horizon.value
        cli = await asyncio.to_thread(
            subprocess.run,
            [str(CLI), "health", "--database-url", PG_URL, "--schema", str(schema_of(engine)),
             "--warn-after", "0.5", "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        (reported,) = [c for c in json.loads(cli.stdout) if c["component"] == "event store"]
        assert reported["status"] == "warn", reported
        await tx.rollback()
    finally:
        await stuck.close()
    # once the stuck transaction is gone, the held-back events come through (exactly once)
    deadline = time.monotonic() + 30
    while True:
        page, _ = await store.read_all(limit=100)
        seen = [e.event_id for e in page if e.event_id in ids]
        if sorted(seen) == ids or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sorted(seen) == ids
