"""Subprocess: run a ThreeStepSaga and SIGKILL itself right after step one is persisted.

argv: <sqlite-file | pg:schema> <effects-file> <saga-id>
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[3]))  # tests/conftest.py imports tests.*

from saga_test_models import Recorder, ThreeStepSaga

from cqrs_ddd_advanced_core.sagas import SagaOrchestrator
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemySagaRepository


class DyingRepository(SQLAlchemySagaRepository[ThreeStepSaga]):
    async def add(self, saga: ThreeStepSaga, *, uow: Any = None) -> None:
        await super().add(saga, uow=uow)
        if saga.completed_steps == ["one"]:
            os.kill(os.getpid(), signal.SIGKILL)  # between step one and step two


def engine_for(target: str) -> Any:
    if target.startswith("pg:"):
        from conftest import pg_engine_for  # the test suite's helper

        return pg_engine_for(target[3:])
    return create_engine(f"sqlite+aiosqlite:///{target}")


async def main(target: str, effects: str, saga_id: str) -> None:
    engine = engine_for(target)
    repo = DyingRepository(ThreeStepSaga, engine, stall_after=timedelta(seconds=0.5))
    await SagaOrchestrator(repo, args=(Recorder(effects),)).run(ThreeStepSaga(id=saga_id))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
