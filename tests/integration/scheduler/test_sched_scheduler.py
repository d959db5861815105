"""SQLAlchemyCommandScheduler and SchedulerWorker on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sched_test_models import Report, SendReminder, effects_metadata, sched_effects
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import Backoff
from cqrs_ddd_advanced_core.scheduling import PeriodicCommand, ScheduledCommandStatus
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    SchedulerWorker,
    SQLAlchemyCommandScheduler,
)
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork

Factory = async_sessionmaker[AsyncSession]
WORKER = Path(__file__).parent / "sched_worker.py"
ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


def schema_of(engine: AsyncEngine) -> str | None:
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module.schema_of(engine)  # type: ignore[no-any-return]
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture
def scheduler(library_tables: AsyncEngine) -> SQLAlchemyCommandScheduler:
    return SQLAlchemyCommandScheduler(
        library_tables, max_attempts=3, backoff=Backoff(base=0.05, factor=2.0)
    )


class Sent:
    def __init__(self) -> None:
        self.items: list[Any] = []

    async def __call__(self, command: Any) -> None:
        self.items.append(command)


async def test_schedule_in_uow_and_dispatch_when_due(
    scheduler: SQLAlchemyCommandScheduler, session_factory: Factory
) -> None:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await scheduler.schedule(SendReminder(n=0), uow=uow)  # rolled back
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        now_id = await scheduler.schedule(SendReminder(n=1))
        later_id = await scheduler.schedule(SendReminder(n=2), delay=timedelta(hours=1))
        await uow.commit()
    sent = Sent()
    worker = SchedulerWorker(scheduler, sent, [SendReminder])
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert sent.items == [SendReminder(n=1)]
    done = await scheduler.get(now_id)
    assert done is not None and done.status is ScheduledCommandStatus.DISPATCHED
    later = await scheduler.get(later_id)
    assert later is not None and later.status is ScheduledCommandStatus.PENDING
    assert later.payload == {"n": 2}
    counts = await scheduler.count_by_status()
    assert counts[ScheduledCommandStatus.DISPATCHED] == 1
    assert counts[ScheduledCommandStatus.PENDING] == 1
    assert (await scheduler.stats()).scheduled == 1


async def test_key_is_idempotent_and_cancel(scheduler: SQLAlchemyCommandScheduler) -> None:
    at = utc_now() + timedelta(minutes=5)
    first = await scheduler.schedule(SendReminder(n=1), at=at, key="remind-1")
    assert await scheduler.schedule(SendReminder(n=9), at=at, key="remind-1") == first
    assert await scheduler.cancel(key="remind-1") is True
    assert await scheduler.cancel(first) is False  # already cancelled
    cancelled = await scheduler.get(first)
    assert cancelled is not None and cancelled.status is ScheduledCommandStatus.CANCELLED
    with pytest.raises(ConfigurationError):
        await scheduler.cancel()
    with pytest.raises(ConfigurationError):
        await scheduler.schedule({"n": 1})


async def test_unknown_type_dead_letters_only_that_row(
    scheduler: SQLAlchemyCommandScheduler,
) -> None:
    await scheduler.schedule(SendReminder(n=1))
    bad = await scheduler.schedule({"x": 1}, command_type="NoSuchCommand")
    await scheduler.schedule(SendReminder(n=2))
    sent = Sent()
    assert await SchedulerWorker(scheduler, sent, [SendReminder]).run_once() == 3
    assert sent.items == [SendReminder(n=1), SendReminder(n=2)]
    dead = await scheduler.dead_letters()
    assert [d.id for d in dead] == [bad]
    assert "NoSuchCommand" in (dead[0].error or "")


async def test_retry_with_backoff_then_dead(scheduler: SQLAlchemyCommandScheduler) -> None:
    calls: list[datetime] = []

    async def failing(command: Any) -> None:
        calls.append(utc_now())
        raise RuntimeError("handler down")

    cid = await scheduler.schedule(SendReminder(n=1))
    worker = SchedulerWorker(scheduler, failing, [SendReminder])
    for _ in range(100):
        await worker.run_once()
        record = await scheduler.get(cid)
        if record is not None and record.status is ScheduledCommandStatus.DEAD:
            break
        await asyncio.sleep(0.02)
    assert record is not None and record.status is ScheduledCommandStatus.DEAD
    assert record.attempts == 3 and len(calls) == 3
    assert (calls[1] - calls[0]).total_seconds() >= 0.05 * 0.9
    assert (calls[2] - calls[1]).total_seconds() >= 0.10 * 0.9
    assert await scheduler.requeue([cid]) == 1


async def test_periodic_fires_once_per_period_across_workers(
    scheduler: SQLAlchemyCommandScheduler,
) -> None:
    sent = Sent()
    periodic = [
        PeriodicCommand("report", timedelta(hours=1), "BuildReport", {"kind": "hourly"}),
        PeriodicCommand("nightly", "0 2 * * *", "BuildReport", {"kind": "nightly"}),
    ]
    workers = [
        SchedulerWorker(scheduler, sent, [Report], periodic=periodic, catch_up=None)
        for _ in range(3)
    ]
    for _ in range(3):
        await asyncio.gather(*(w.run_once() for w in workers))
    assert sorted(r.kind for r in sent.items) == ["hourly", "nightly"]
    # the next period fires again, once
    nxt = periodic[0].parsed.next_after(utc_now())
    await asyncio.gather(
        *(scheduler.fire_periodic(periodic[:1], now=nxt, catch_up=None) for _ in range(3))
    )
    counts = await scheduler.count_by_status()
    assert counts[ScheduledCommandStatus.PENDING] == 1


def test_bad_cron_fails_at_start(scheduler: SQLAlchemyCommandScheduler) -> None:
    with pytest.raises(ConfigurationError):
        SchedulerWorker(scheduler, Sent(), periodic=[PeriodicCommand("x", "61 * * * *", "X")])


async def test_same_second_commands_dispatched_once_by_three_workers(
    library_tables: AsyncEngine, tmp_path: Path, dialect_name: str
) -> None:
    """1,000 commands due at the same second, 3 worker processes (1 on SQLite)."""
    engine = library_tables
    async with engine.begin() as conn:
        await conn.run_sync(effects_metadata.create_all)
    scheduler = SQLAlchemyCommandScheduler(engine)
    due = datetime.now(UTC).replace(microsecond=0)
    total = 1000
    rows = [
        {
            "command_type": "SendReminder",
            "payload": {"n": i},
            "max_attempts": 3,
            "available_at": due,
        }
        for i in range(total)
    ]
    await scheduler.queue.enqueue(rows)
    schema = schema_of(engine)
    target = f"pg:{schema}" if schema else str(engine.url.database)
    n_workers = 3 if dialect_name == "postgresql" else 1
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, str(WORKER), target, f"w{i}")
        for i in range(n_workers)
    ]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 180)
    assert codes == [0] * n_workers
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(sched_effects))).scalar()
        distinct = (
            await conn.execute(select(func.count(func.distinct(sched_effects.c.n))))
        ).scalar()
        per_worker: dict[str, int] = dict(
            (
                await conn.execute(
                    select(sched_effects.c.worker, func.count()).group_by(sched_effects.c.worker)
                )
            ).all()
        )
    assert count == total and distinct == total
    counts = await scheduler.count_by_status()
    assert counts[ScheduledCommandStatus.DISPATCHED] == total
    if n_workers > 1:
        assert len(per_worker) > 1, per_worker  # the work was actually shared


async def test_scheduler_built_on_a_session_factory(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    scheduler = SQLAlchemyCommandScheduler(session_factory)
    cid = await scheduler.schedule(SendReminder(n=5), key="sf")
    sent = Sent()
    assert await SchedulerWorker(scheduler, sent, [SendReminder]).run_once() == 1
    assert sent.items == [SendReminder(n=5)]
    record = await scheduler.get(cid)
    assert record is not None and record.status is ScheduledCommandStatus.DISPATCHED
