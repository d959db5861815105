"""A saga worker killed between two steps is resumed from the next step, exactly once."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

from saga_test_models import Recorder, ThreeStepSaga
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.sagas import SagaOrchestrator, SagaStatus
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    SagaRecoveryWorker,
    SQLAlchemySagaRepository,
)

WORKER = Path(__file__).parent / "saga_kill_worker.py"
ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


def schema_of(engine: AsyncEngine) -> str | None:
    """``tests/conftest.py``'s ``schema_of``, from the module instance pytest loaded."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module.schema_of(engine)  # type: ignore[no-any-return]
    raise RuntimeError("tests/conftest.py is not loaded")


async def test_killed_between_steps_resumes_once(
    library_tables: AsyncEngine, tmp_path: Path
) -> None:
    engine = library_tables
    schema = schema_of(engine)
    target = f"pg:{schema}" if schema else str(engine.url.database)
    effects = tmp_path / "effects.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), target, str(effects), "saga-killed-1"
    )
    assert await asyncio.wait_for(proc.wait(), 60) == -signal.SIGKILL
    recorder = Recorder(effects)
    assert recorder.read() == ["one"]

    repo = SQLAlchemySagaRepository(ThreeStepSaga, engine, stall_after=timedelta(seconds=0.5))
    saga = await repo.get("saga-killed-1")
    assert saga is not None and saga.completed_steps == ["one"]
    assert saga.status is SagaStatus.RUNNING

    workers = [
        SagaRecoveryWorker([SagaOrchestrator(repo, args=(recorder,))], engine) for _ in range(3)
    ]
    # Three workers poll until the saga has stalled (0.5 s without a save) and is resumed.
    resumed = 0
    for _ in range(100):
        resumed += sum(await asyncio.gather(*(w.run_once() for w in workers)))
        if resumed:
            break
        await asyncio.sleep(0.1)
    assert resumed == 1
    assert recorder.read() == ["one", "two", "three"]
    done = await repo.get("saga-killed-1")
    assert done is not None and done.status is SagaStatus.COMPLETED
    assert sum(await asyncio.gather(*(w.run_once() for w in workers))) == 0
