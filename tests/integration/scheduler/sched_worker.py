"""Subprocess scheduler worker: dispatch due SendReminder commands, recording each dispatch.

argv: <sqlite-file | pg:schema> <worker-name>
Runs until no command has been due for one second.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[3]))  # tests/conftest.py imports tests.*

from sched_test_models import SendReminder, sched_effects

from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    SchedulerWorker,
    SQLAlchemyCommandScheduler,
)


def engine_for(target: str) -> Any:
    if target.startswith("pg:"):
        from conftest import pg_engine_for  # the test suite's helper

        return pg_engine_for(target[3:])
    return create_engine(f"sqlite+aiosqlite:///{target}")


async def main(target: str, name: str) -> None:
    engine = engine_for(target)

    async def dispatch(command: SendReminder) -> None:
        async with engine.begin() as conn:
            await conn.execute(sched_effects.insert().values(n=command.n, worker=name))

    worker = SchedulerWorker(
        SQLAlchemyCommandScheduler(engine), dispatch, [SendReminder], batch_size=25
    )
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.0:
        if await worker.run_once():
            idle_since = time.monotonic()
        else:
            await asyncio.sleep(0.05)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
