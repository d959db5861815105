"""PostgreSQL restarts while the services run (``@pytest.mark.slow``).

The restarts happen on a dedicated throw-away cluster on a free port (``relcheck<pid>``, created
by the test, dropped afterwards, leftovers of killed runs dropped first; needs the Debian
``pg_createcluster`` tooling and root), so they disturb nobody else using the shared server, and
concurrent test runs on one machine do not meet. While an outbox relay, a job worker and a
projection runner work through a backlog, the cluster is stopped (fast shutdown: every backend
terminated), kept down for a moment and started again. The services must resume by themselves
(pool pre-ping, reconnect with backoff) and finish the backlog plus what is written after the
restart, with no loss and no duplicate effect in the database, and without a tight error loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import asyncpg
import pytest
from tests.reliability.rel_faults import SOAK, DedicatedCluster
from tests.reliability.rel_world import ErrorCounter, World

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

SCHEMA = "rel_restart"
BATCHES = 200 if SOAK else 60
DOWN_FOR = 3.0 if SOAK else 1.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[DedicatedCluster]:
    why = DedicatedCluster.available()
    if why is not None:
        if os.environ.get("REQUIRE_POSTGRES") == "1" and os.geteuid() == 0:
            pytest.fail(f"cannot create a dedicated PostgreSQL cluster: {why}")
        pytest.skip(f"no dedicated PostgreSQL cluster: {why}")
    DedicatedCluster.drop_stale()
    c = DedicatedCluster()
    c.create()
    try:
        c.start()
        yield c
    finally:
        c.drop()


async def _fresh_schema(c: DedicatedCluster) -> None:
    conn = await asyncpg.connect(c.dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "services",
    [
        ("relay",),
        ("worker",),
        ("runner",),
    ],
    ids=["relay", "worker", "runner"],
)
async def test_rel_services_survive_server_restart(
    cluster: DedicatedCluster, services: tuple[str, ...]
) -> None:
    await cluster.wait_ready()
    await _fresh_schema(cluster)
    world = World(cluster.url, SCHEMA, slow=0.05, recover_interval=1.0)
    await world.setup()
    try:
        for k in range(BATCHES):
            await world.write_batch(k)
        with ErrorCounter() as errors:
            world.start(only=services)
            await asyncio.sleep(0.3)  # the services are mid-backlog
            before = await world.progress()
            unfinished = {k: v for k, v in world.expected().items() if before[k] < v}
            assert unfinished, "the backlog was done before the restart: nothing was tested"
            started = time.monotonic()
            await asyncio.to_thread(cluster.restart, down_for=DOWN_FOR)
            await cluster.wait_ready()
            restart_seconds = time.monotonic() - started
            for k in range(BATCHES, BATCHES + BATCHES // 2):  # written after the restart
                await world.write_batch(k)
            await world.wait_done(within=90)
            assert not world.dead_services()
            report = await world.check()
        # Reconnect attempts back off: a handful of warnings per second of outage, not hundreds.
        assert errors.total <= 40 * (restart_seconds + 1), errors.counts
        print(
            f"restart[{'+'.join(services)}]: progress before {before}, down "
            f"{restart_seconds:.1f}s, {report}, warnings={dict(errors.counts)}"
        )
    finally:
        await world.dispose()
