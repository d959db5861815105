"""The one bind rule for the projection stores, the runner and the snapshot store, and the
runner's worker lifecycle (``run`` / ``run_once`` / ``stop()``), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from proj_support import counting_projection, run_until, snapshot, ticks, wait_for_checkpoint
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.snapshots import Snapshot
from cqrs_ddd_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core.errors import ConcurrencyError, ConfigurationError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    ProjectionRunner,
    SQLAlchemyProjectionPositionStore,
    SQLAlchemyProjectionStore,
    SQLAlchemySnapshotStore,
)

Factory = async_sessionmaker[AsyncSession]

#: name -> (bind from engine and session factory) -> (positional args, keyword args)
BIND_FORMS: dict[str, Callable[[AsyncEngine, Factory], tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "engine": lambda e, f: ((e,), {}),
    "bind=engine": lambda e, f: ((), {"bind": e}),
    "session factory": lambda e, f: ((f,), {}),
    "session_factory=": lambda e, f: ((), {"session_factory": f}),
    "uow factory": lambda e, f: ((lambda: SQLAlchemyUnitOfWork(f),), {}),
    "bind=uow factory": lambda e, f: ((), {"bind": lambda: SQLAlchemyUnitOfWork(f)}),
}


@pytest.mark.parametrize("form", list(BIND_FORMS))
async def test_proj_runner_takes_every_bind_form(
    library_tables: AsyncEngine, session_factory: Factory, form: str
) -> None:
    """``ProjectionRunner`` used to refuse an engine (``session_factory=`` only)."""
    event_store = InMemoryEventStore()
    await event_store.append(ticks("s", 0, 5))
    args, kwargs = BIND_FORMS[form](library_tables, session_factory)
    runner = ProjectionRunner(
        counting_projection("counts", "counts"), *args, event_store=event_store, **kwargs
    )
    await run_until(runner, 5)
    docs = await snapshot(runner.store, "counts")
    assert docs["s"]["_version"] == 5


async def test_proj_runner_given_a_session_or_uow_runs_its_own_transactions(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    event_store = InMemoryEventStore()
    await event_store.append(ticks("s", 0, 3))
    async with session_factory() as session:
        by_session = ProjectionRunner(
            counting_projection("counts", "counts"), session, event_store=event_store
        )
        await run_until(by_session, 3)
        assert not session.in_transaction()  # the caller's session was left alone
    await event_store.append(ticks("s", 3, 2), expected_version=3)
    by_uow = ProjectionRunner(
        counting_projection("counts", "counts"),
        SQLAlchemyUnitOfWork(session_factory),
        event_store=event_store,
    )
    await run_until(by_uow, 5)
    assert (await snapshot(by_uow.store, "counts"))["s"]["_version"] == 5


@pytest.mark.parametrize("form", list(BIND_FORMS))
async def test_proj_stores_take_every_bind_form(
    library_tables: AsyncEngine, session_factory: Factory, form: str
) -> None:
    args, kwargs = BIND_FORMS[form](library_tables, session_factory)
    store = SQLAlchemyProjectionStore(*args, **kwargs)
    positions = SQLAlchemyProjectionPositionStore(*args, **kwargs)
    assert await store.upsert("docs", "a", {"n": 1})
    assert await store.get_many("docs", ["a", "missing"]) == {
        "a": {"n": 1, "_id": "a", "_version": 1, "_last_event_id": None, "_last_position": None}
    }
    assert await positions.save_position("p", 3)
    assert await positions.get_position("p") == 3
    async with SQLAlchemyUnitOfWork(session_factory) as uow:  # joined, rolled back
        await store.upsert("docs", "b", {"n": 2}, uow=uow)
        await positions.save_position("p", 4, uow=uow)
    assert await store.get("docs", "b") is None
    assert await positions.get_position("p") == 3


async def test_proj_stores_bound_to_a_unit_of_work_join_it(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    uow = SQLAlchemyUnitOfWork(session_factory)
    store = SQLAlchemyProjectionStore(uow)
    positions = SQLAlchemyProjectionPositionStore(bind=uow)
    await SQLAlchemyProjectionStore(session_factory).ensure_collection("docs")
    async with uow:
        await store.upsert("docs", "a", {"n": 1})
        await positions.save_position("p", 1)
        await uow.commit()
    async with uow:
        await store.upsert("docs", "b", {"n": 2})
        await positions.save_position("p", 2)
    reader = SQLAlchemyProjectionStore(session_factory)
    assert set(await reader.get_many("docs", ["a", "b"])) == {"a"}
    assert await SQLAlchemyProjectionPositionStore(session_factory).get_position("p") == 1


def test_proj_bad_binds_fail_at_construction(session_factory: Factory) -> None:
    for build in (
        lambda: SQLAlchemyProjectionStore(42),  # type: ignore[arg-type]
        lambda: SQLAlchemyProjectionPositionStore(bind="sqlite://"),  # type: ignore[arg-type]
        lambda: SQLAlchemySnapshotStore(3.5),  # type: ignore[arg-type]
        lambda: ProjectionRunner(
            counting_projection("c", "c"),
            object(),  # type: ignore[arg-type]
            event_store=InMemoryEventStore(),
        ),
    ):
        with pytest.raises(ConfigurationError, match="cannot be built from"):
            build()
    with pytest.raises(ConfigurationError, match="not twice"):
        SQLAlchemyProjectionStore(session_factory, session_factory=session_factory)
    with pytest.raises(ConfigurationError, match="not twice"):
        ProjectionRunner(
            counting_projection("c", "c"),
            session_factory,
            session_factory=session_factory,
            event_store=InMemoryEventStore(),
        )
    with pytest.raises(ConfigurationError, match="needs a bind"):
        ProjectionRunner(counting_projection("c", "c"), event_store=InMemoryEventStore())


@pytest.mark.parametrize("form", ["engine", "bind=engine", "uow factory", "session factory"])
async def test_snapshot_store_takes_every_bind_form(
    library_tables: AsyncEngine, session_factory: Factory, form: str
) -> None:
    args, kwargs = BIND_FORMS[form](library_tables, session_factory)
    store = SQLAlchemySnapshotStore(*args, **kwargs, keep=None)
    for version in (1, 2, 3):
        await store.save(
            Snapshot(aggregate_type="A", aggregate_id="1", version=version, state={"v": version})
        )
    await store.save(
        Snapshot(aggregate_type="A", aggregate_id="1", version=4, schema_version=2, state={})
    )
    assert (await store.get_latest("A", "1")).version == 4  # type: ignore[union-attr]
    old_schema = await store.get_latest("A", "1", schema_version=1)
    assert old_schema is not None and old_schema.state == {"v": 3}
    both = await store.get_latest("A", "1", schema_version=1, max_version=2)
    assert both is not None and both.version == 2
    assert await store.delete("A", "1") == 4  # keep=None kept every snapshot
    assert await store.get_latest("A", "1") is None


async def test_snapshot_store_joins_the_callers_unit_of_work(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    store = SQLAlchemySnapshotStore(library_tables)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await store.save(Snapshot(aggregate_type="A", aggregate_id="1", version=1, state={}))
        assert await store.get_latest("A", "1", uow=uow) is not None
    assert await store.get_latest("A", "1") is None  # rolled back with the unit of work


async def test_proj_refused_first_write_leaves_the_collection_usable(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    """A first write refused after its collection was created used to roll the CREATE back
    while the store remembered the collection as ready: every later call failed."""
    store = SQLAlchemyProjectionStore(session_factory)
    with pytest.raises(InvalidValueError):
        await store.upsert("fresh", "a", [1, 2])  # type: ignore[arg-type]
    assert await store.upsert("fresh", "a", {"n": 1})
    assert await store.count("fresh") == 1


async def test_proj_runner_stops_like_every_worker(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    event_store = InMemoryEventStore()
    await event_store.append(ticks("s", 0, 4))
    runner = ProjectionRunner(
        counting_projection("counts", "counts"),
        session_factory,
        event_store=event_store,
        poll_interval=30,  # stop() cuts the wait short
    )
    async with background(runner.run()) as running:
        await wait_for_checkpoint(runner, 4)
        assert runner.is_running
        with pytest.raises(ConcurrencyError, match="already running"):
            await runner.run_once()
        await asyncio.wait_for(runner.stop(), 10)
        assert running.done() and not runner.is_running
        await running
    # stopped before it started: run() returns at once, the next run() works again
    runner.stop()
    await asyncio.wait_for(runner.run(), 10)
    await event_store.append(ticks("s", 4, 1), expected_version=4)
    async with background(runner.run()) as again:
        await wait_for_checkpoint(runner, 5)
        await asyncio.wait_for(runner.stop(), 10)
        await again
    assert (await snapshot(runner.store, "counts"))["s"]["_version"] == 5


async def test_proj_runner_run_with_a_stop_event_is_deprecated_but_works(
    library_tables: AsyncEngine, session_factory: Factory
) -> None:
    event_store = InMemoryEventStore()
    await event_store.append(ticks("s", 0, 2))
    runner = ProjectionRunner(
        counting_projection("counts", "counts"),
        session_factory=session_factory,
        event_store=event_store,
        poll_interval=30,
    )
    stop = asyncio.Event()
    async with background(runner.run(stop=stop)) as running:
        with pytest.warns(DeprecationWarning, match=r"runner\.stop\(\)"):
            await asyncio.sleep(0)  # the task starts here
        await wait_for_checkpoint(runner, 2)
        stop.set()
        await asyncio.wait_for(running, 10)
    assert not runner.is_running
    assert (await snapshot(runner.store, "counts"))["s"]["_version"] == 2


@asynccontextmanager
async def background(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """``work`` as a task that does not outlive the test (a runner left running after its
    schema is dropped would write into another one)."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
