"""Lent connections (PostgreSQL + asyncpg): one-statement queue operations outside a unit of
work and a pin run on a pooled connection that goes back to the pool at the end of the
event-loop step, not after every statement.

Statements a task runs back to back share one checkout; as soon as the task awaits anything
else the connection is back in the pool; ``engine.dispose()`` closes a parked one; a statement
the server refuses is translated and leaves the connection usable; one interrupted mid-flight
(no server error code) never hands its connection out again.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import ConnectionLostError, UniqueViolationError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, queue_columns, queue_indexes
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION

pytestmark = [pytest.mark.postgres_only, pytest.mark.asyncpg_only]

ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


def conftest() -> Any:
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(ROOT_CONFTEST):
            return module
    raise RuntimeError("tests/conftest.py is not loaded")


def make_table() -> Table:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    return Table(
        "lent_items",
        md,
        *queue_columns(),
        Column("name", String(50), nullable=False, unique=True),
        *queue_indexes("lent_items"),
    )


@pytest.fixture
async def setup(pg_schema: str) -> AsyncIterator[tuple[AsyncEngine, DurableQueue, str]]:
    app_name = f"lent-{uuid.uuid4().hex[:8]}"
    engine: AsyncEngine = conftest().pg_engine_for(
        pg_schema, connect_args={"server_settings": {"application_name": app_name}}
    )
    t = make_table()
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.create_all)
    try:
        yield engine, DurableQueue(t, engine, lease_seconds=10), app_name
    finally:
        await engine.dispose()


def count_checkouts(engine: AsyncEngine) -> Callable[[], int]:
    seen = [0]

    def on_checkout(*_: Any) -> None:
        seen[0] += 1

    event.listen(engine.sync_engine, "checkout", on_checkout)
    return lambda: seen[0]


def checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def backends(app_name: str) -> int:
    conn = await asyncpg.connect(conftest().pg_dsn())
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name
        )
    finally:
        await conn.close()
    return int(n)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def insert_named(q: DurableQueue) -> Callable[[Any], Any]:
    def build(_dialect: Any) -> Any:
        t = q.table
        return (
            insert(t)
            .values(
                name=bindparam("name", type_=String()),
                status="pending",
                available_at=func.now(),
                created_at=func.now(),
                attempts=0,
            )
            .returning(t.c.id)
        )

    return build


async def test_back_to_back_statements_share_one_checkout_until_the_task_awaits(
    setup: tuple[AsyncEngine, DurableQueue, str],
) -> None:
    engine, q, _ = setup
    await q.enqueue([{"name": f"n{i}"} for i in range(6)])  # one statement: lent as well
    await asyncio.sleep(0)  # the enqueue's connection goes back to the pool
    checkouts = count_checkouts(engine)
    claims = await q.claim(6)
    for c in claims:  # no await but the statements: one connection for all seven
        assert not (await q.complete([c])).lost
    assert checkouts() == 1
    assert checked_out(engine) == 1  # parked until the end of this loop step
    await asyncio.sleep(0)  # the task awaits something else: the flush runs first
    assert checked_out(engine) == 0
    for c in claims:
        assert (await q.complete([c])).lost  # fenced: settled once only
    assert checkouts() == 2


async def test_dispose_closes_a_parked_connection(
    setup: tuple[AsyncEngine, DurableQueue, str],
) -> None:
    engine, q, app_name = setup
    await q.enqueue([{"name": "a"}])
    [claim] = await q.claim(1)
    assert checked_out(engine) == 1
    await engine.dispose()
    assert await backends(app_name) == 0
    # The queue keeps working on the engine's new pool.
    assert (await q.complete([claim])).done == (claim.id,)


async def test_a_refused_statement_is_translated_and_keeps_the_connection(
    setup: tuple[AsyncEngine, DurableQueue, str],
) -> None:
    engine, q, _ = setup
    build = insert_named(q)
    checkouts = count_checkouts(engine)
    assert len(await q.run("insert_named", build, {"name": "x"})) == 1
    with pytest.raises(UniqueViolationError):
        await q.run("insert_named", build, {"name": "x"})
    assert len(await q.run("insert_named", build, {"name": "y"})) == 1
    assert checkouts() == 1


async def test_a_statement_cancelled_mid_flight_does_not_lend_its_connection_again(
    setup: tuple[AsyncEngine, DurableQueue, str],
) -> None:
    engine, q, app_name = setup

    def sleeper(_dialect: Any) -> Any:
        return select(func.pg_sleep(bindparam("s", type_=Float())).label("slept"))

    task = asyncio.create_task(q.run("sleep", sleeper, {"s": 30.0}))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The flush closes the connection it ran on (gracefully: that takes a round trip).
    await until(lambda: checked_out(engine) == 0)
    assert await backends(app_name) == 0  # closed, not returned to the pool
    assert (await q.run("sleep", sleeper, {"s": 0.0}))[0]["slept"] is None


async def test_a_connection_the_server_closed_fails_retryably_then_recovers(
    setup: tuple[AsyncEngine, DurableQueue, str],
) -> None:
    _, q, app_name = setup
    await q.enqueue([{"name": f"n{i}"} for i in range(2)])
    [first] = await q.claim(1)
    admin = await asyncpg.connect(conftest().pg_dsn())
    try:
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            app_name,
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.2)
    try:
        outcome = await q.complete([first])  # the pool's checkout guard may replace it first
    except ConnectionLostError:
        outcome = await q.complete([first])
    assert outcome.done == (first.id,)
    assert [c["name"] for c in await q.claim(5)] == ["n1"]


async def test_inside_a_unit_of_work_statements_join_its_transaction(
    setup: tuple[AsyncEngine, DurableQueue, str],
) -> None:
    engine, q, _ = setup
    build, count = insert_named(q), count_builder(q)
    checkouts = count_checkouts(engine)
    async with SQLAlchemyUnitOfWork(engine):  # ambient: no lent connection, no autocommit
        await q.run("insert_named", build, {"name": "rolled-back"})
        assert (await q.run("count", count, {}))[0]["n"] == 1
        # not committed: the unit of work rolls back on exit
    assert checkouts() == 1
    assert (await q.run("count", count, {}))[0]["n"] == 0


def count_builder(q: DurableQueue) -> Callable[[Any], Any]:
    def build(_dialect: Any) -> Any:
        return select(func.count(literal_column("1")).label("n")).select_from(q.table)

    return build


async def test_a_connection_parked_by_the_last_step_of_a_run_is_checked_in_before_it_ends(
    pg_schema: str,
) -> None:
    # asyncio.run() stops its loop one iteration after the main task ends, then cancels the
    # tasks still pending: the parked connection must be back in the pool by then.
    t = make_table()
    state: dict[str, Any] = {}

    async def main() -> None:
        engine: AsyncEngine = conftest().pg_engine_for(pg_schema)
        state["engine"] = engine
        async with engine.begin() as conn:
            await conn.run_sync(t.metadata.create_all)
        q = DurableQueue(t, engine, lease_seconds=10)
        await q.enqueue([{"name": "only"}])
        [claim] = await q.claim(1)
        assert (await q.complete([claim])).done == (claim.id,)
        state["parked"] = checked_out(engine)  # main ends right here

    def in_a_fresh_loop() -> None:
        with asyncio.Runner() as runner:
            runner.run(main())  # returns once the loop has stopped after main
            state["after"] = checked_out(state["engine"])
            runner.run(state["engine"].dispose())

    await asyncio.to_thread(in_a_fresh_loop)
    assert state["parked"] == 1
    assert state["after"] == 0
