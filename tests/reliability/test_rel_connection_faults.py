"""Connection faults under a unit of work (PostgreSQL): ``pg_terminate_backend`` mid-transaction.

Every case: the operation fails with ``ConnectionLostError`` (retryable, from the error tree),
nothing of the broken transaction is visible afterwards, and the next unit of work on the same
engine works (the pool drops the dead connection; the checkout guard replaces pooled connections
the server closed, see ``postgres/pool.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.reliability.rel_faults import (
    admin_connect,
    app_name,
    backends,
    tagged_engine,
    terminate_backends,
    wait_for,
    wait_for_backend,
)

from cqrs_ddd_advanced_core.projections import ErrorPolicy, Projection, ProjectionContext
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import ConnectionLostError, CQRSDDDError, RetryableError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION, metadata
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.binding import Binding as SessionSource
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.errors import is_retryable
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin

pytestmark = pytest.mark.postgres_only

md = sa.MetaData()
rows_table = sa.Table(
    "rel_rows",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("payload", sa.String(100), nullable=False),
)


class RowStore:
    """A minimal store on the library's session resolution (errors translated there)."""

    def __init__(self) -> None:
        self._source = SessionSource()

    async def add(self, row_id: int, payload: str = "x", *, uow: Any = None) -> None:
        async with self._source.session(uow) as session:
            await session.execute(sa.insert(rows_table).values(id=row_id, payload=payload))

    async def sleep(self, seconds: float, *, uow: Any = None) -> None:
        async with self._source.session(uow) as session:
            await session.execute(sa.select(sa.func.pg_sleep(seconds)))


@pytest.fixture
async def tagged(pg_schema: str) -> AsyncIterator[tuple[AsyncEngine, str, str]]:
    name = app_name("rel-uow")
    eng = tagged_engine(pg_schema, name, pool_size=3, max_overflow=0)
    async with eng.begin() as conn:
        await conn.run_sync(md.create_all)
    try:
        yield eng, name, pg_schema
    finally:
        await eng.dispose()


async def _visible_ids(schema: str) -> set[int]:
    conn = await admin_connect()
    try:
        rows = await conn.fetch(f'SELECT id FROM "{schema}".rel_rows')
    finally:
        await conn.close()
    return {r["id"] for r in rows}


def _assert_connection_lost(exc: BaseException) -> None:
    assert isinstance(exc, ConnectionLostError), repr(exc)
    assert isinstance(exc, RetryableError) and exc.retryable
    assert is_retryable(exc)


async def _next_uow_works(factory: async_sessionmaker[Any], store: RowStore, row_id: int) -> None:
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await store.add(row_id, "after", uow=uow)
        await uow.commit()


@pytest.mark.parametrize("fails_at", ["next_statement", "commit"])
async def test_rel_terminate_idle_in_transaction(
    tagged: tuple[AsyncEngine, str, str], fails_at: str
) -> None:
    eng, name, schema = tagged
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = RowStore()
    with pytest.raises(CQRSDDDError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            for i in range(1, 11):
                await store.add(i, uow=uow)
            assert await terminate_backends(name, only="xact") == 1
            if fails_at == "next_statement":
                await store.add(11, uow=uow)
            await uow.commit()
    _assert_connection_lost(info.value)
    assert await _visible_ids(schema) == set()
    await _next_uow_works(factory, store, 100)
    assert await _visible_ids(schema) == {100}


async def test_rel_terminate_during_running_statement(
    tagged: tuple[AsyncEngine, str, str],
) -> None:
    eng, name, schema = tagged
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = RowStore()

    async def work() -> None:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await store.add(1, uow=uow)
            await store.sleep(30, uow=uow)
            await uow.commit()

    task = asyncio.create_task(work())
    await wait_for_backend(name, state="active", query_contains="pg_sleep")
    started = time.monotonic()
    assert await terminate_backends(name, only="active") == 1
    with pytest.raises(CQRSDDDError) as info:
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 8
    _assert_connection_lost(info.value)
    assert await _visible_ids(schema) == set()
    await _next_uow_works(factory, store, 2)
    assert await _visible_ids(schema) == {2}


async def test_rel_terminate_in_before_commit_hook(tagged: tuple[AsyncEngine, str, str]) -> None:
    """The connection dies right before COMMIT is sent (after every write of the UoW)."""
    eng, name, schema = tagged
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = RowStore()
    after_commit_ran: list[bool] = []

    async def kill(_uow: SQLAlchemyUnitOfWork) -> None:
        assert await terminate_backends(name, only="xact") == 1

    with pytest.raises(CQRSDDDError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await store.add(1, uow=uow)
            uow.before_commit(kill)
            uow.after_commit(lambda: after_commit_ran.append(True))
            await uow.commit()
    _assert_connection_lost(info.value)
    assert not after_commit_ran
    assert await _visible_ids(schema) == set()
    await _next_uow_works(factory, store, 3)
    assert await _visible_ids(schema) == {3}


async def _fill_pool_and_terminate(eng: AsyncEngine, name: str) -> None:
    """Three idle pooled connections, all terminated; returns once the backends are gone."""
    async with eng.connect() as c1, eng.connect() as c2, eng.connect() as c3:
        for c in (c1, c2, c3):
            await c.execute(sa.text("SELECT 1"))
    assert len(await backends(name)) == 3
    assert await terminate_backends(name) == 3

    async def gone() -> bool:
        return not await backends(name)

    await wait_for(gone)


async def test_rel_idle_pooled_connections_terminated_are_replaced(
    tagged: tuple[AsyncEngine, str, str],
) -> None:
    """Pooled connections the server closed never surface as errors.

    The checkout guard (``postgres/pool.py``) sees asyncpg's closed socket without I/O. Once the
    backends have exited (their FATAL and FIN reached the client), no unit of work fails.
    """
    eng, name, schema = tagged
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = RowStore()
    await _fill_pool_and_terminate(eng, name)
    for i in range(6):  # more UoWs than pooled connections: every dead one is met
        await _next_uow_works(factory, store, 10 + i)
    assert await _visible_ids(schema) == set(range(10, 16))


@pytest.mark.parametrize("engine_kw", [{"pool_ping_after": 0.0}, {"pool_pre_ping": True}])
async def test_rel_idle_pooled_connections_pinged_are_replaced(
    pg_schema: str, engine_kw: dict[str, Any]
) -> None:
    """With a ping on every checkout (ours, or SQLAlchemy's), a dead one is replaced too."""
    name = app_name("rel-ping")
    eng = tagged_engine(pg_schema, name, pool_size=3, max_overflow=0, **engine_kw)
    try:
        async with eng.begin() as conn:
            await conn.run_sync(md.create_all)
        await _fill_pool_and_terminate(eng, name)
        factory = async_sessionmaker(eng, expire_on_commit=False)
        for i in range(4):
            await _next_uow_works(factory, RowStore(), 20 + i)
        assert await _visible_ids(pg_schema) == set(range(20, 24))
    finally:
        await eng.dispose()


async def test_rel_connection_killed_unnoticed_fails_retryable_once(
    tagged: tuple[AsyncEngine, str, str],
) -> None:
    """Without a ping, a connection killed the instant before use fails *retryably*, once.

    The guard skips the ping for connections idle under ``pool_ping_after`` (5 s): that is
    what makes a hot checkout free. A connection killed in that window is found dead by its
    first statement: ``ConnectionLostError`` (retryable), and the retry works.
    """
    eng, name, schema = tagged
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = RowStore()
    async with eng.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
        await conn.commit()  # nothing left to roll back when it goes back to the pool
        # Killed while checked out; it goes back to the pool at once, and the unit of work
        # below takes it again. Whether the client saw the FIN by then is a race: replaced at
        # checkout or failing retryably are both allowed, any other error is not.
        assert await terminate_backends(name) == 1
    errors: list[CQRSDDDError] = []
    for i in range(2):
        try:
            await _next_uow_works(factory, store, 30 + i)
        except CQRSDDDError as exc:
            errors.append(exc)
            await _next_uow_works(factory, store, 30 + i)
    assert len(errors) <= 1
    assert all(isinstance(e, ConnectionLostError) and e.retryable for e in errors), errors
    assert await _visible_ids(schema) == {30, 31}


async def test_rel_repeated_terminations_then_retry_succeeds(
    tagged: tuple[AsyncEngine, str, str],
) -> None:
    """A retry loop driven by ``retryable`` converges: 20 rounds, each killed once."""
    eng, name, schema = tagged
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = RowStore()
    attempts = 0
    errors: list[CQRSDDDError] = []
    for round_ in range(20):
        killed = False
        while True:
            attempts += 1
            try:
                async with SQLAlchemyUnitOfWork(factory) as uow:
                    await store.add(round_, uow=uow)
                    if not killed:
                        killed = True
                        await terminate_backends(name, only="xact")
                    await uow.commit()
                break
            except CQRSDDDError as exc:
                errors.append(exc)
    assert attempts == 40
    assert len(errors) == 20
    assert all(isinstance(e, ConnectionLostError) and e.retryable for e in errors)
    assert await _visible_ids(schema) == set(range(20))


# -- the same with the repository and the event sinks (event store + outbox) -----------------


class RelFaultCreated(DomainEvent):
    n: int


class RelFaultThing(AggregateRoot[str]):
    id: str
    n: int = 0


class _Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class RelFaultThingModel(VersionMixin, _Base):
    __tablename__ = "rel_fault_things"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    n: Mapped[int] = mapped_column(sa.Integer)


class KillingSink:
    """Placed after the event store and the outbox: terminates the UoW's own backend once they
    wrote, so the COMMIT meets a dead connection."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def write_events(self, events: Any, *, uow: Any) -> None:
        assert await terminate_backends(self.name, only="xact") == 1


@pytest.mark.parametrize("where", ["after_sinks", "before_add"])
async def test_rel_terminate_with_repository_and_sinks(
    tagged: tuple[AsyncEngine, str, str], where: str
) -> None:
    eng, name, schema = tagged
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_Base.metadata.create_all)
    factory = async_sessionmaker(eng, expire_on_commit=False)
    repo = SQLAlchemyRepository(RelFaultThing, RelFaultThingModel)
    store = SQLAlchemyEventStore(factory, listen=False)
    outbox = SQLAlchemyOutboxStorage(factory)
    thing = RelFaultThing(id="t-1")
    thing.add_event(RelFaultCreated(n=1))
    sinks: list[Any] = [store, outbox]
    if where == "after_sinks":
        sinks.append(KillingSink(name))
    with pytest.raises(CQRSDDDError) as info:
        async with SQLAlchemyUnitOfWork(factory, event_sinks=sinks) as uow:
            if where == "before_add":
                await store.append(StoredEvent(event_type="X", aggregate_id="x"), uow=uow)
                assert await terminate_backends(name, only="xact") == 1
            await repo.add(thing, uow=uow)
            await uow.commit()
    _assert_connection_lost(info.value)
    assert thing.version == 0  # not bumped: nothing was committed
    assert [type(e).__name__ for e in thing.pending_events] == ["RelFaultCreated"]  # given back
    conn = await admin_connect()
    try:
        for table in ("rel_fault_things", "cqrs_events", "outbox_messages"):
            assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}') == 0, table
    finally:
        await conn.close()
    # retry in a new unit of work: the aggregate and its event are written exactly once
    async with SQLAlchemyUnitOfWork(factory, event_sinks=[store, outbox]) as uow:
        await repo.add(thing, uow=uow)
        await uow.commit()
    assert thing.version == 1
    assert [e.event_type for e in await store.get_events("t-1")] == ["RelFaultCreated"]
    assert (await outbox.stats()).pending == 1


async def test_rel_connection_lost_inside_a_projection_handler_is_transient(
    tagged: tuple[AsyncEngine, str, str],
) -> None:
    eng, name, _ = tagged
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    factory = async_sessionmaker(eng, expire_on_commit=False)
    store = SQLAlchemyEventStore(factory, listen=False)
    await store.append(StoredEvent(event_type="Tick", aggregate_id="s-1"))
    projection = Projection("rel_conn_lost", collections=["rel_conn_lost"])
    kills = {"left": 3}

    @projection.on("Tick")
    async def tick(event: StoredEvent, ctx: ProjectionContext) -> None:
        if kills["left"]:
            kills["left"] -= 1
            await terminate_backends(name, only="xact")  # the runner's transaction dies
        await ctx.store.upsert("rel_conn_lost", event.aggregate_id, {"v": 1}, uow=ctx.uow)

    runner = ProjectionRunner(
        projection,
        event_store=store,
        session_factory=factory,
        error_policy=ErrorPolicy(backoff=0.01),  # the default 3 attempts
        poll_interval=0.05,
    )
    assert await runner.run_once() == 1
    assert [d["_id"] for d in await runner.store.find("rel_conn_lost")] == ["s-1"]


async def test_rel_subscriber_resumes_exactly_once_after_connection_loss(
    tagged: tuple[AsyncEngine, str, str],
) -> None:
    """Its connections terminated every 10 appends, ``subscribe()`` either rides it out (pool
    pre-ping, polling) or ends with a retryable library error; resuming from the last cursor it
    reported delivers every event exactly once."""
    eng, name, schema = tagged
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    factory = async_sessionmaker(eng, expire_on_commit=False)
    writer_engine = tagged_engine(schema, app_name("rel-sub-writer"))
    writer = SQLAlchemyEventStore(
        async_sessionmaker(writer_engine, expire_on_commit=False), listen=False
    )
    reader = SQLAlchemyEventStore(factory, listen=True, poll_interval=0.05)
    total = 300
    seen: list[str] = []
    cursor: dict[str, str | None] = {"at": None}
    confirmed = {"n": 0}  # events seen when the cursor was last reported
    losses = 0
    errors: list[CQRSDDDError] = []

    def remember(c: str | None) -> None:
        cursor["at"] = c
        confirmed["n"] = len(seen)

    async def consume() -> None:
        nonlocal losses
        while len(seen) < total:
            try:
                async for event in reader.subscribe(
                    after=cursor["at"], batch_size=7, on_cursor=remember
                ):
                    seen.append(event.event_id)
                    if len(seen) >= total:
                        return
            except CQRSDDDError as exc:
                errors.append(exc)
                losses += 1
                # the page in flight (after the last reported cursor) comes again
                del seen[confirmed["n"] :]

    task = asyncio.create_task(consume())
    try:
        for i in range(total // 3):
            await writer.append(
                [StoredEvent(event_type="T", aggregate_id=f"s{i % 5}", event_id=f"e{i}-{j}")
                 for j in range(3)]
            )  # fmt: skip
            if i % 10 == 5:
                await terminate_backends(name)
            await asyncio.sleep(0.01)
        await asyncio.wait_for(task, 60)
    finally:
        task.cancel()
        await writer_engine.dispose()
    assert all(e.retryable for e in errors), errors  # a loss surfaces as a retryable error
    assert len(seen) == total and len(set(seen)) == total  # and resuming loses nothing
