"""ProjectionRunner on SQLite and PostgreSQL, over the in-memory and the SQL event store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from proj_support import (
    TICK,
    append_round_robin,
    counting_projection,
    run_until,
    snapshot,
    ticks,
    wait_for_checkpoint,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.projections import (
    ErrorPolicy,
    Projection,
    ProjectionContext,
    ProjectionHandlerError,
    ProjectionProgress,
)
from cqrs_ddd_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core.errors import ConcurrencyError
from cqrs_ddd_core.ports.event_store import IEventStore, StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    ProjectionRunner,
    SQLAlchemyProjectionPositionStore,
    SQLAlchemyProjectionStore,
)
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import set_fast_path

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture(params=["memory", "sql"])
def event_store(
    request: pytest.FixtureRequest, library_tables: AsyncEngine, session_factory: Factory
) -> IEventStore:
    if request.param == "memory":
        return InMemoryEventStore()
    return SQLAlchemyEventStore(session_factory, listen=False)


def runner_for(
    projection: Projection, event_store: IEventStore, session_factory: Factory, **kw: Any
) -> ProjectionRunner:
    kw.setdefault("batch_size", 64)
    kw.setdefault("poll_interval", 0.05)
    return ProjectionRunner(
        projection, event_store=event_store, session_factory=session_factory, **kw
    )


async def test_run_once_applies_every_event_exactly_once(
    event_store: IEventStore, session_factory: Factory
) -> None:
    total = await append_round_robin(event_store, streams=10, per_stream=30, chunk=7)
    runner = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    await run_until(runner, total)
    docs = await snapshot(runner.store, "counts")
    assert len(docs) == 10
    assert all(d["_version"] == 30 and d["last_version"] == 30 for d in docs.values())
    checkpoint = await runner.status()
    assert checkpoint is not None
    assert checkpoint.events_processed == total
    # caught up: nothing more to do; new events are picked up
    assert await runner.run_once() == 0
    await event_store.append(ticks("s3", 10_000, 5), expected_version=30)
    await run_until(runner, total + 5)
    docs = await snapshot(runner.store, "counts")
    assert (docs["s3"]["_version"], docs["s3"]["last_n"]) == (35, 10_004)


async def test_rebuild_equals_incremental_build(
    event_store: IEventStore, session_factory: Factory
) -> None:
    runner = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    for round_ in range(3):  # build incrementally while the log grows
        await append_round_robin(event_store, streams=5, per_stream=20, prefix=f"r{round_}-")
        await run_until(runner, 100 * (round_ + 1))
    built = await snapshot(runner.store, "counts")
    reports: list[ProjectionProgress] = []
    await runner.rebuild(progress=reports.append)
    await run_until(runner, 300, progress=reports.append)
    assert await snapshot(runner.store, "counts") == built
    batches = [r.events_processed for r in reports if not r.caught_up]
    assert batches == sorted(batches)
    assert reports[-1].caught_up
    assert reports[-1].events_processed == batches[-1]


async def test_async_progress_callback_and_unhandled_event_types(
    event_store: IEventStore, session_factory: Factory
) -> None:
    await event_store.append(
        [StoredEvent(event_type="Other", aggregate_id="x", payload={}) for _ in range(3)]
    )
    await event_store.append(ticks("s", 0, 2))
    seen: list[int] = []

    async def progress(p: ProjectionProgress) -> None:
        seen.append(p.events_processed)

    runner = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    expected = 2 if isinstance(event_store, SQLAlchemyEventStore) else 5
    await run_until(runner, expected, progress=progress)
    # the SQL store filters by handled event types; the in-memory one hands every event over
    assert seen
    docs = await snapshot(runner.store, "counts")
    assert docs["s"]["_version"] == 2


async def test_failing_handler_stops_naming_the_event_and_keeps_earlier_work(
    event_store: IEventStore, session_factory: Factory
) -> None:
    await append_round_robin(event_store, streams=1, per_stream=100, chunk=10)
    broken = {"on": True}
    calls: dict[int, int] = {}
    projection = counting_projection("counts", "counts")

    @projection.on(TICK)
    def poisoned(event: StoredEvent, ctx: ProjectionContext) -> None:
        n = event.payload["n"]
        calls[n] = calls.get(n, 0) + 1
        if broken["on"] and n == 37:
            raise RuntimeError("boom")

    runner = runner_for(
        projection,
        event_store,
        session_factory,
        batch_size=10,
        error_policy=ErrorPolicy(max_attempts=3, backoff=0.001),
    )
    with pytest.raises(ProjectionHandlerError) as caught:
        await run_until(runner, 100)
    error = caught.value
    assert error.event.payload["n"] == 37
    assert error.event_id == error.event.event_id
    assert error.attempts == 3
    assert error.event_id in str(error)
    assert isinstance(error.__cause__, RuntimeError)
    assert calls[37] == 3
    checkpoint = await runner.status()
    assert checkpoint is not None
    assert checkpoint.events_processed == 37  # 0..36 committed, 37 not
    docs = await snapshot(runner.store, "counts")
    assert (docs["s0"]["_version"], docs["s0"]["last_n"]) == (37, 36)
    # after the fix, a restarted runner resumes exactly at the failing event
    broken["on"] = False
    await run_until(runner, 100)
    docs = await snapshot(runner.store, "counts")
    assert (docs["s0"]["_version"], docs["s0"]["last_n"]) == (100, 99)


async def test_transient_handler_failure_is_retried(
    event_store: IEventStore, session_factory: Factory
) -> None:
    await append_round_robin(event_store, streams=2, per_stream=20)
    failures = {"left": 2}
    projection = counting_projection("counts", "counts")

    @projection.on(TICK)
    async def flaky(event: StoredEvent, ctx: ProjectionContext) -> None:
        if event.payload["n"] == 25 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("flaky downstream")

    runner = runner_for(
        projection, event_store, session_factory, error_policy=ErrorPolicy(backoff=0.001)
    )
    await run_until(runner, 40)
    docs = await snapshot(runner.store, "counts")
    assert {d["_version"] for d in docs.values()} == {20}


async def test_one_runner_per_projection(
    event_store: IEventStore, session_factory: Factory, dialect_name: str
) -> None:
    await append_round_robin(event_store, streams=2, per_stream=10)
    gate = asyncio.Event()
    entered = asyncio.Event()
    projection = counting_projection("counts", "counts")

    @projection.on(TICK)
    async def slow(event: StoredEvent, ctx: ProjectionContext) -> None:
        entered.set()
        await gate.wait()

    first = runner_for(projection, event_store, session_factory)
    second = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(entered.wait(), 30)
    if dialect_name == "postgresql":  # SQLite: the open batch holds the one write lock
        # the lease is seen held without waiting for the batch in flight
        with pytest.raises(ConcurrencyError, match="another runner"):
            await second.run_once()
        # a different projection is not blocked by the first one's lease
        other = runner_for(
            counting_projection("other", "other_counts"), event_store, session_factory
        )
        await run_until(other, 20)
    gate.set()
    await wait_for_checkpoint(first, 20)
    with pytest.raises(ConcurrencyError, match="another runner"):
        await second.run_once()
    await asyncio.wait_for(first.stop(), 10)
    await task
    # released: the second runner can run now
    await run_until(second, 20)


async def test_run_follows_the_log_until_stopped(
    event_store: IEventStore, session_factory: Factory
) -> None:
    runner = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    task = asyncio.create_task(runner.run())
    await append_round_robin(event_store, streams=3, per_stream=10)
    # on PostgreSQL, other transactions of the shared server may hold the log's horizon back
    await wait_for_checkpoint(runner, 30)
    await asyncio.wait_for(runner.stop(), 10)
    assert task.done()
    await task
    docs = await snapshot(runner.store, "counts")
    assert {d["_version"] for d in docs.values()} == {10}


async def test_cancelled_mid_batch_then_restarted(
    event_store: IEventStore, session_factory: Factory
) -> None:
    total = await append_round_robin(event_store, streams=4, per_stream=50, chunk=25)
    started = asyncio.Event()
    projection = counting_projection("counts", "counts")
    applied = {"n": 0}

    @projection.on(TICK)
    async def slow_after_some(event: StoredEvent, ctx: ProjectionContext) -> None:
        applied["n"] += 1
        if applied["n"] == 90:  # in the middle of the second batch of 64
            started.set()
            await asyncio.sleep(30)

    runner = runner_for(projection, event_store, session_factory)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    checkpoint = await runner.status()
    assert checkpoint is not None
    # the interrupted batch left no trace: the checkpoint is before the 90th event
    assert checkpoint.events_processed < 90
    restarted = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    await run_until(restarted, total)
    docs = await snapshot(restarted.store, "counts")
    assert {d["_version"] for d in docs.values()} == {50}


async def test_typed_collection_projection(
    event_store: IEventStore, session_factory: Factory
) -> None:
    from cqrs_ddd_advanced_core.projections import FieldType, ProjectionField, ProjectionSchema

    schema = ProjectionSchema(
        [
            ProjectionField("stream", FieldType.STRING, primary_key=True),
            ProjectionField("total", FieldType.BIGINT),
            ProjectionField("events", FieldType.INTEGER),
        ]
    )
    projection = Projection("totals", schemas={"stream_totals": schema})

    @projection.on(TICK)
    async def add(event: StoredEvent, ctx: ProjectionContext) -> None:
        row = await ctx.get("stream_totals", event.aggregate_id)
        total = (row["total"] if row else 0) + event.payload["n"]
        events = (row["events"] if row else 0) + 1
        await ctx.upsert("stream_totals", event.aggregate_id, {"total": total, "events": events})

    await append_round_robin(event_store, streams=3, per_stream=10)
    runner = runner_for(projection, event_store, session_factory, batch_size=7)
    await run_until(runner, 30)
    rows = {r["stream"]: r for r in await runner.store.find("stream_totals")}
    assert {r["events"] for r in rows.values()} == {10}
    assert sum(r["total"] for r in rows.values()) == sum(range(30))
    before = dict(rows)
    await runner.rebuild()
    await run_until(runner, 30)
    assert {r["stream"]: r for r in await runner.store.find("stream_totals")} == {
        k: {**v, "_last_event_id": v["_last_event_id"]} for k, v in before.items()
    }


async def test_positions_are_written_in_the_callers_transaction(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork

    positions = SQLAlchemyProjectionPositionStore(session_factory)
    store = SQLAlchemyProjectionStore(session_factory)
    await store.ensure_collection("docs")
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.upsert("docs", "a", {"x": 1}, uow=uow)
        assert await positions.save_position("p", 10, uow=uow)
    assert await positions.get("p") is None  # rolled back together
    assert await store.get("docs", "a") is None
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.upsert("docs", "a", {"x": 1})
        assert await positions.save_position("p", 10)
        await uow.commit()
    assert await positions.get_position("p") == 10
    # monotonic: an older position is ignored
    assert not await positions.save_position("p", 9)
    assert not await positions.save_position("p", 10)
    assert await positions.save_position("p", 11, cursor="0.11")
    checkpoint = await positions.get("p")
    assert checkpoint is not None
    assert (checkpoint.position, checkpoint.cursor) == (11, "0.11")


async def test_checkpoint_compare_and_set(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork

    positions = SQLAlchemyProjectionPositionStore(session_factory)
    first = await positions.advance("p", cursor="5", position=5, count=5, expected=0)
    assert first.events_processed == 5
    with pytest.raises(ConcurrencyError):  # a stale runner that also started from 0
        await positions.advance("p", cursor="3", position=3, count=3, expected=0)
    store = SQLAlchemyProjectionStore(session_factory)
    await store.ensure_collection("docs")
    with pytest.raises(ConcurrencyError):
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await store.upsert("docs", "stale", {"x": 1}, uow=uow)
            await positions.advance("p", cursor="9", position=9, count=4, expected=4, uow=uow)
            await uow.commit()
    assert await store.get("docs", "stale") is None
    second = await positions.advance("p", cursor="9", position=9, count=4, expected=5)
    assert (second.events_processed, second.cursor) == (9, "9")
    assert [c.projection for c in await positions.get_all()] == ["p"]
    await positions.reset("p")
    assert await positions.get("p") is None


@pytest.mark.postgres_only
async def test_late_commit_is_not_skipped(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    """An event that takes its position first but commits last is still applied (PostgreSQL:
    the runner reads the event store's commit-safe cursor)."""
    from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork

    event_store = SQLAlchemyEventStore(session_factory, listen=False)
    runner = runner_for(counting_projection("counts", "counts"), event_store, session_factory)
    async with SQLAlchemyUnitOfWork(session_factory) as slow:
        (early,) = await event_store.append(ticks("slow", 0, 1), uow=slow)
        (late,) = await event_store.append(ticks("fast", 1, 1))  # commits first
        assert early.position is not None and late.position is not None
        assert early.position < late.position
        await runner.run_once()
        checkpoint = await runner.status()
        # nothing past the open transaction's event is visible yet
        assert checkpoint is None or checkpoint.events_processed == 0
        await slow.commit()
    await run_until(runner, 2)
    docs = await snapshot(runner.store, "counts")
    assert {k: v["_version"] for k, v in docs.items()} == {"slow": 1, "fast": 1}


@pytest.mark.parametrize("buffered", [True, False])
async def test_one_event_writes_a_document_once_in_both_write_modes(
    library_tables: AsyncEngine, session_factory: Factory, buffered: bool
) -> None:
    event_store = InMemoryEventStore()
    await event_store.append(ticks("s", 0, 3))
    projection = Projection("twice", collections=["twice"])

    @projection.on(TICK)
    async def write_twice(event: StoredEvent, ctx: ProjectionContext) -> None:
        assert await ctx.upsert("twice", "doc", {"n": event.payload["n"], "write": 1})
        second = await ctx.upsert("twice", "doc", {"n": event.payload["n"], "write": 2})
        assert second is buffered  # refused at once when written through

    runner = runner_for(projection, event_store, session_factory, buffer_writes=buffered)
    await run_until(runner, 3)
    doc = await runner.store.get("twice", "doc")
    assert doc is not None
    assert (doc["n"], doc["write"], doc["_version"]) == (2, 1, 3)


def accumulating_projection() -> Projection:
    projection = Projection("acc", collections=["acc"])

    @projection.on(TICK)
    async def add(event: StoredEvent, ctx: ProjectionContext) -> None:
        doc = await ctx.get("acc", event.aggregate_id) or {"sum": 0, "ns": [], "price": "0"}
        await ctx.upsert(
            "acc",
            event.aggregate_id,
            {
                "sum": doc["sum"] + event.payload["n"],
                "ns": [*doc["ns"], event.payload["n"]][-3:],
                "price": str(Decimal(doc["price"]) + Decimal("0.1")),
                "seen_version": doc.get("_version"),
            },
        )

    return projection


async def test_buffered_reads_of_own_writes_match_write_through(
    library_tables: AsyncEngine, session_factory: Factory, engine: AsyncEngine
) -> None:
    event_store = InMemoryEventStore()
    total = await append_round_robin(event_store, streams=4, per_stream=30, chunk=15)
    statements: list[str] = []
    # Every statement through SQLAlchemy, where the hook below sees it: the asyncpg fast path
    # sends kept statements on the driver directly (how many depends on the versions).
    set_fast_path(engine, False)

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    results = {}
    for buffered in (False, True):
        runner = ProjectionRunner(
            accumulating_projection(),
            event_store=event_store,
            session_factory=session_factory,
            batch_size=60,
            buffer_writes=buffered,
        )
        statements.clear()
        sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            await runner.rebuild()
            await run_until(runner, total)
        finally:
            sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
        results[buffered] = (await snapshot(runner.store, "acc"), len(statements))
    (through, through_count), (buffered_docs, buffered_count) = results[False], results[True]
    assert buffered_docs == through
    assert sum(d["sum"] for d in through.values()) == sum(range(total))
    assert {d["price"] for d in through.values()} == {"3.0"}
    assert {d["_version"] for d in through.values()} == {30}
    assert {d["seen_version"] for d in through.values()} == {29}
    # each document is read once per batch instead of once per event
    assert buffered_count * 3 < through_count, (buffered_count, through_count)
