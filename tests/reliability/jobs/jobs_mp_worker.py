"""Subprocess job worker for the multi-process tests.

argv: <sqlite-file | pg:schema> <worker-name> <die-after> <lease-seconds>
``die-after`` > 0: SIGKILL itself inside the handler of that many-th job (holding its claims).
Exits once no job has been claimable for 1.5 seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "integration" / "jobs"))
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[3]))  # tests/conftest.py imports tests.*

from jobs_mp_models import job_effects
from jobs_test_models import EffectJob

from cqrs_ddd_advanced_core.jobs import JobContext
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    JobWorker,
    SQLAlchemyBackgroundJobRepository,
)


def engine_for(target: str) -> Any:
    if target.startswith("pg:"):
        from conftest import pg_engine_for  # the test suite's helper

        return pg_engine_for(target[3:])
    return create_engine(f"sqlite+aiosqlite:///{target}")


async def main(target: str, name: str, die_after: int, lease: float) -> None:
    engine = engine_for(target)
    repo = SQLAlchemyBackgroundJobRepository(EffectJob, engine, lease_seconds=lease)
    started = 0

    async def handler(job: EffectJob, ctx: JobContext) -> int:
        nonlocal started
        started += 1
        if die_after and started >= die_after:
            await asyncio.sleep(0.05)  # let the sibling slots claim too
            os.kill(os.getpid(), signal.SIGKILL)
        async with engine.begin() as conn:
            await conn.execute(job_effects.insert().values(n=job.n, worker=name))
        return job.n

    worker = JobWorker(repo, handlers={EffectJob: handler}, concurrency=4, poll_interval=0.05)
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.5:
        if await worker.run_until_idle():
            idle_since = time.monotonic()
        else:
            await asyncio.sleep(0.1)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
