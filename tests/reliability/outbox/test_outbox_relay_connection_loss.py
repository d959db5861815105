"""A relay whose pinned connection is terminated (pg_terminate_backend) re-pins and goes on."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff

pytestmark = pytest.mark.postgres_only

ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


def conftest() -> object:
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module
    raise RuntimeError("tests/conftest.py is not loaded")


async def test_relay_survives_its_connection_being_terminated(
    library_tables: AsyncEngine,
) -> None:
    helpers = conftest()
    schema = helpers.schema_of(library_tables)  # type: ignore[attr-defined]
    app_name = f"relay-{uuid.uuid4().hex[:8]}"
    engine: AsyncEngine = helpers.pg_engine_for(  # type: ignore[attr-defined]
        schema, connect_args={"server_settings": {"application_name": app_name}}
    )
    outbox = SQLAlchemyOutboxStorage(engine, lease_seconds=2)
    writer = SQLAlchemyOutboxStorage(library_tables)
    publisher = InMemoryPublisher()
    relay = OutboxRelay(
        outbox,
        publisher,
        poll_interval=0.05,
        listen=False,
        error_backoff=Backoff(base=0.05, maximum=0.5),
    )
    task = asyncio.create_task(relay.run())
    admin = await asyncpg.connect(helpers.pg_dsn())  # type: ignore[attr-defined]
    try:
        first = [OutboxMessage(event_type="Before") for _ in range(5)]
        await writer.save_messages(first)
        await wait_until(lambda: len(publisher.published) >= 5)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            app_name,
        )
        assert killed >= 1
        second = [OutboxMessage(event_type="After") for _ in range(5)]
        await writer.save_messages(second)
        await wait_until(lambda: len(set(publisher.ids)) >= 10)
        assert set(publisher.ids) == {m.message_id for m in first + second}
        assert relay.metrics.errors >= 1  # it noticed, said so, and carried on
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await admin.close()
        await engine.dispose()


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
