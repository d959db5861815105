"""SIGKILL of the relay, job worker and projection runner processes at random points.

Each iteration writes a few batches (events, outbox messages, jobs), starts one process per
service, and SIGKILLs every one of them at its own random moment (uniform over the window in
which it is working). After all iterations a last set of processes drains everything. Then:

- exactly-once effects in the database: each projection document counts every event of its
  stream exactly once; every job is COMPLETED once; every outbox row is published once;
- at-least-once delivery: every message id reached the "broker" (a file written before the
  relay acks); duplicates are only messages whose batch was in flight at a kill;
- the event log holds every committed event exactly once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PG_URL
from tests.reliability import rel_service_proc
from tests.reliability.rel_faults import soak
from tests.reliability.rel_world import World

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

ITERATIONS = soak(20, 100)
BATCHES_PER_ITERATION = 8
SERVICES = ("relay", "worker", "runner")


async def _spawn(
    ctx: Any, ready: Any, schema: str, service: str, delivery: Path
) -> multiprocessing.process.BaseProcess:
    proc: multiprocessing.process.BaseProcess = ctx.Process(
        target=rel_service_proc.serve,
        args=(PG_URL, schema, service, str(delivery), ready),
        daemon=True,
    )
    proc.start()
    return proc


async def _kill_later(proc: multiprocessing.process.BaseProcess, delay: float) -> None:
    await asyncio.sleep(delay)
    assert proc.is_alive(), proc.exitcode  # it was running, not dead already
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.join, 30)
    assert proc.exitcode == -signal.SIGKILL, proc.exitcode


async def _generation(
    ctx: Any, ready: Any, schema: str, delivery: Path
) -> list[multiprocessing.process.BaseProcess]:
    procs = [await _spawn(ctx, ready, schema, s, delivery) for s in SERVICES]
    started = {await asyncio.to_thread(ready.get, True, 60) for _ in SERVICES}
    assert started == set(SERVICES)
    return procs


async def test_rel_sigkill_services_at_random_points(pg_schema: str, tmp_path: Path) -> None:
    rng = random.Random(20261125)
    world = World(PG_URL, pg_schema)
    world.running = set(SERVICES)
    await world.setup()
    delivery = tmp_path / "delivered.txt"
    delivery.touch()
    kills: Counter[str] = Counter()
    ctx = rel_service_proc.context()
    ready = ctx.Queue()
    k = 0
    try:
        for _ in range(ITERATIONS):
            for _ in range(BATCHES_PER_ITERATION):
                await world.write_batch(k)
                k += 1
            procs = await _generation(ctx, ready, pg_schema, delivery)
            await asyncio.gather(*(_kill_later(p, rng.uniform(0.0, 0.3)) for p in procs))
            kills.update(SERVICES)
        # a last generation drains everything (leases of killed claims expire meanwhile)
        procs = await _generation(ctx, ready, pg_schema, delivery)
        try:
            await world.wait_done(within=90)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                await asyncio.to_thread(p.join, 30)
        delivered = Counter(delivery.read_text().split())
        report = await world.check(delivered=delivered)
        print(
            f"sigkill: {dict(kills)} kills over {ITERATIONS} iterations, {report}, "
            f"duplicate deliveries {sum(c - 1 for c in delivered.values())}"
        )
    finally:
        await world.dispose()
