"""The outbox speaks the durable queue's verbs (``uow=`` joins a unit of work, ``fail`` takes
``retry=``); its earlier names still work, with a DeprecationWarning (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def outbox(library_tables: AsyncEngine) -> SQLAlchemyOutboxStorage:
    return SQLAlchemyOutboxStorage(library_tables)


async def _saved(outbox: SQLAlchemyOutboxStorage, n: int) -> list[str]:
    messages = [OutboxMessage(event_type="E", payload={"i": i}) for i in range(n)]
    await outbox.save_messages(messages)
    return [m.message_id for m in messages]


async def test_complete_in_a_unit_of_work_commits_or_rolls_back_with_it(
    outbox: SQLAlchemyOutboxStorage, session_factory: Factory
) -> None:
    await _saved(outbox, 1)
    claimed = await outbox.claim(10)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        assert (await outbox.complete(claimed, uow=uow)).done == (claimed[0].claim.id,)
    assert (await outbox.stats()).done == 0  # rolled back
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await outbox.complete(claimed, uow=uow)
        await uow.commit()
    assert (await outbox.stats(uow=None)).done == 1


async def test_fail_without_retry_dead_letters_at_once(outbox: SQLAlchemyOutboxStorage) -> None:
    ids = await _saved(outbox, 2)
    claimed = await outbox.claim(10)
    outcome = await outbox.fail(claimed, error="poison", retry=False)
    assert sorted(outcome.dead) == sorted(c.claim.id for c in claimed)
    dead = await outbox.dead_letters()
    assert sorted(m.message_id for m in dead) == sorted(ids)
    assert all(m.error == "poison" and m.retry_count == 1 for m in dead)


async def test_claim_batch_ack_nack_purge_published_warn_and_still_work(
    outbox: SQLAlchemyOutboxStorage,
) -> None:
    await _saved(outbox, 2)
    with pytest.warns(DeprecationWarning, match="claim_batch is deprecated.*use claim"):
        first, second = await outbox.claim_batch(10)
    with pytest.warns(DeprecationWarning, match="ack is deprecated.*use complete"):
        assert (await outbox.ack([first])).done == (first.claim.id,)
    with pytest.warns(DeprecationWarning, match="nack is deprecated.*use fail"):
        assert (await outbox.nack([second], error="later", delay=3600)).retried == (
            second.claim.id,
        )
    with pytest.warns(DeprecationWarning, match="purge_published is deprecated.*use purge"):
        assert await outbox.purge_published(timedelta(seconds=-1)) == 1
    stats = await outbox.stats()
    assert (stats.done, stats.scheduled) == (0, 1)
