"""The command scheduler speaks the durable queue's verbs; ``claim_due``, ``settle_failure`` and
``session_factory=`` still work, with a DeprecationWarning (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sched_test_models import SendReminder
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.jobs import Backoff
from cqrs_ddd_advanced_core.scheduling import ScheduledCommandStatus
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.scheduling import SQLAlchemyCommandScheduler


@pytest.fixture
def scheduler(library_tables: AsyncEngine) -> SQLAlchemyCommandScheduler:
    return SQLAlchemyCommandScheduler(
        library_tables, max_attempts=2, backoff=Backoff(base=3600.0, factor=1.0)
    )


async def test_claim_complete_fail_release_heartbeat(
    scheduler: SQLAlchemyCommandScheduler,
) -> None:
    ids = [await scheduler.schedule(SendReminder(n=i)) for i in range(4)]
    claims = await scheduler.claim(10)
    assert [c.id for c in claims] == ids
    assert await scheduler.claim(10) == []  # leased
    assert (await scheduler.heartbeat(claims[:1], lease_seconds=60)).extended == (ids[0],)
    assert (await scheduler.complete(claims[:1])).done == (ids[0],)
    outcome = await scheduler.fail(claims[1:2], error="boom")  # backoff: an hour
    assert outcome.retried == (ids[1],)
    assert (await scheduler.fail(claims[2:3], error="no", retry=False)).dead == (ids[2],)
    assert (await scheduler.release(claims[3:])).released == (ids[3],)
    assert [c.id for c in await scheduler.claim(10)] == [ids[3]]  # released: due at once
    statuses = [(await scheduler.get(i)).status for i in ids]  # type: ignore[union-attr]
    assert statuses == [
        ScheduledCommandStatus.DISPATCHED,
        ScheduledCommandStatus.PENDING,
        ScheduledCommandStatus.DEAD,
        ScheduledCommandStatus.RUNNING,
    ]
    stats = await scheduler.stats()
    assert (stats.done, stats.dead, stats.scheduled, stats.leased) == (1, 1, 1, 1)


async def test_dead_letters_requeue_all_and_purge_in_seconds(
    scheduler: SQLAlchemyCommandScheduler,
) -> None:
    ids = [await scheduler.schedule(SendReminder(n=i)) for i in range(2)]
    await scheduler.fail(await scheduler.claim(10), error="no", retry=False)
    assert sorted(c.id for c in await scheduler.dead_letters()) == ids
    assert await scheduler.requeue() == 2  # no ids: every dead command
    assert await scheduler.dead_letters() == []
    await scheduler.complete(await scheduler.claim(10))
    assert await scheduler.purge(3600.0) == 0
    assert await scheduler.purge(timedelta(seconds=-1)) == 2


async def test_claim_due_and_settle_failure_warn_and_still_work(
    scheduler: SQLAlchemyCommandScheduler,
) -> None:
    cid = await scheduler.schedule(SendReminder(n=1))
    with pytest.warns(DeprecationWarning, match="claim_due is deprecated.*use claim"):
        [claim] = await scheduler.claim_due()
    assert claim.id == cid
    with pytest.warns(DeprecationWarning, match="settle_failure is deprecated.*use fail"):
        assert await scheduler.settle_failure(claim, "boom") is False  # retried later
    record = await scheduler.get(cid)
    assert record is not None and record.attempts == 1 and record.error == "boom"


async def test_session_factory_keyword_is_bind_with_a_warning(
    library_tables: AsyncEngine,
) -> None:
    factory = async_sessionmaker(library_tables, expire_on_commit=False)
    with pytest.warns(DeprecationWarning, match=r"session_factory=.*use bind="):
        scheduler = SQLAlchemyCommandScheduler(session_factory=factory)
    cid = await scheduler.schedule(SendReminder(n=2))
    assert [c.id for c in await scheduler.claim()] == [cid]


def test_bind_and_session_factory_together_are_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(ConfigurationError, match="pass bind= only"):
        SQLAlchemyCommandScheduler(session_factory, session_factory=session_factory)
