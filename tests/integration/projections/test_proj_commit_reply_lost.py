"""A batch whose commit was durable but whose reply was lost (SQLite and PostgreSQL).

The connection can go between the server making a COMMIT durable and the client reading its
reply: the runner sees a transient error for a batch that is applied. It must not apply it
twice, and it must count it: ``run_once`` says how many events were applied.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import ErrorPolicy, Projection, ProjectionContext
from cqrs_ddd_core.errors import ConnectionLostError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

Factory = async_sessionmaker[AsyncSession]


async def test_a_batch_committed_before_its_reply_was_lost_is_applied_once_and_counted(
    library_tables: Any, session_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLAlchemyEventStore(session_factory, listen=False)
    for i in (1, 2):
        await store.append(StoredEvent(event_type="Tick", aggregate_id=f"s-{i}"))
    projection = Projection("reply_lost", collections=["reply_lost"])
    handled: list[str] = []
    lose_next_reply = [False]

    @projection.on("Tick")
    async def tick(event: StoredEvent, ctx: ProjectionContext) -> None:
        handled.append(event.aggregate_id)
        lose_next_reply[0] = len(handled) == 2  # the batch's commit: durable, reply lost
        await ctx.store.upsert("reply_lost", event.aggregate_id, {"n": 1}, uow=ctx.uow)

    commit = SQLAlchemyUnitOfWork.commit

    async def commit_then_lose_the_reply(self: SQLAlchemyUnitOfWork) -> None:
        await commit(self)
        if lose_next_reply[0]:
            lose_next_reply[0] = False
            raise ConnectionLostError("connection lost while reading the reply to COMMIT")

    monkeypatch.setattr(SQLAlchemyUnitOfWork, "commit", commit_then_lose_the_reply)
    runner = ProjectionRunner(
        projection,
        event_store=store,
        session_factory=session_factory,
        error_policy=ErrorPolicy(backoff=0.01),
    )
    assert await runner.run_once() == 2
    assert handled == ["s-1", "s-2"]  # not applied again
    assert sorted(d["_id"] for d in await runner.store.find("reply_lost")) == ["s-1", "s-2"]
    checkpoint = await runner.positions.get("reply_lost")
    assert checkpoint is not None and checkpoint.events_processed == 2
