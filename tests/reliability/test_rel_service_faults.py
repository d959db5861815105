"""Long-running services under connection faults (PostgreSQL).

An outbox relay, a job worker and a projection runner run together while writers keep
producing; ``pg_terminate_backend`` repeatedly kills the connections of one of them (its work
queries, its LISTEN connection, its lease statements). The service must reconnect and
continue: afterwards nothing is lost, nothing has a duplicate effect in the database, and the
errors were logged with backoff (no tight loop).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from tests.conftest import PG_URL
from tests.reliability.rel_faults import soak, terminate_backends, wait_for_backend
from tests.reliability.rel_world import ErrorCounter, World

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import OutboxRelay, SQLAlchemyOutboxStorage

pytestmark = pytest.mark.postgres_only

BATCHES = soak(60, 600)
FAULT_SECONDS = soak(3.0, 30.0)


@pytest.mark.parametrize("target", ["relay", "worker", "runner", "writer"])
async def test_rel_service_survives_terminated_backends(pg_schema: str, target: str) -> None:
    """``writer``: the writers' own connections die mid-transaction (and, rarely, mid-commit:
    an unknown outcome); they retry with the same ids and the stores stay exactly-once."""
    world = World(PG_URL, pg_schema)
    await world.setup()
    rng = random.Random(target)
    try:
        for k in range(BATCHES // 2):
            await world.write_batch(k)
        with ErrorCounter() as errors:
            world.start()
            killed = rounds = 0
            faults_over = asyncio.Event()
            produced = asyncio.Event()

            async def chaos() -> None:
                nonlocal killed, rounds
                started = time.monotonic()
                while time.monotonic() - started < FAULT_SECONDS:
                    if target == "writer" and produced.is_set():
                        break  # the writer is done: its backends are gone, nothing to kill
                    killed += await terminate_backends(world.name(target))
                    rounds += 1
                    await asyncio.sleep(rng.uniform(0.02, 0.15))
                    dead = world.dead_services()
                    assert not dead, f"services died under the faults: {dead!r}"
                faults_over.set()

            monkey = asyncio.create_task(chaos())
            k = BATCHES // 2
            while not faults_over.is_set() and k < BATCHES:  # keep producing meanwhile
                await world.write_batch(k)
                k += 1
                await asyncio.sleep(0.02)
            produced.set()
            await monkey
            while k < BATCHES:
                await world.write_batch(k)
                k += 1
            assert killed >= rounds // 3, (killed, rounds)
            await world.wait_done(within=60)
            assert not world.dead_services()
            report = await world.check()
        # Errors are logged with backoff, not in a tight loop: bounded by the faults injected.
        assert errors.total <= 10 * killed + 20, errors.counts
        print(
            f"terminate-backend[{target}]: {rounds} rounds, {killed} backends killed, {report}, "
            f"warnings={dict(errors.counts)}"
        )
    finally:
        await world.dispose()


async def test_rel_relay_listen_connection_comes_back(pg_schema: str) -> None:
    world = World(PG_URL, pg_schema)
    await world.setup()
    engine = world.engine("relay")
    outbox = SQLAlchemyOutboxStorage(engine)
    relay = OutboxRelay(outbox, world.publisher, poll_interval=3.0, listen=True)
    task = asyncio.create_task(relay.run())

    async def latency(message_id: str) -> float:
        started = time.monotonic()
        await SQLAlchemyOutboxStorage(world.engine("writer")).save_messages(
            [OutboxMessage(event_type="E", message_id=message_id)]
        )
        while message_id not in world.publisher.ids:
            await asyncio.sleep(0.01)
            assert time.monotonic() - started < 10
        return time.monotonic() - started

    try:
        await wait_for_backend(world.name("relay"), query_contains="LISTEN")
        await asyncio.sleep(3.5)  # past the first poll: the relay now waits on LISTEN
        assert await latency("before") < 1.0  # woken by NOTIFY, not by the 3 s poll
        killed = await terminate_backends(world.name("relay"), query_prefix="LISTEN")
        assert killed == 1
        await asyncio.sleep(3.5)  # the relay notices, polls once, and waits again
        assert await latency("after") < 1.0  # fails: only the 3 s poll wakes it now
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await world.dispose()


async def test_rel_relay_failed_listen_leaks_no_connection(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    async def refuse(*_args: object, **_kw: object) -> None:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of LISTEN")

    monkeypatch.setattr(asyncpg.Connection, "add_listener", refuse)
    world = World(PG_URL, pg_schema)
    await world.setup()
    relay = OutboxRelay(SQLAlchemyOutboxStorage(world.engine("relay")), world.publisher,
                        poll_interval=0.05, listen=True)  # fmt: skip
    try:
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.3)  # LISTEN failed: the relay polls (as documented)
        relay.stop()
        await asyncio.wait_for(task, 10)
        assert world.engine("relay").pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await world.dispose()  # collects the leaked connection quietly (see World.dispose)
