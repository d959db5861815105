"""The unit of work's exit with its backend killed (``pg_terminate_backend``), asyncpg and psycopg.

The connection of a unit of work is found with ``SELECT pg_backend_pid()`` on it and terminated
from another connection; the test waits until the backend is gone. Then:

- leaving the block never raises because of the rollback: a read-only unit of work returns its
  result, after-rollback hooks run, the connection is discarded and the next unit of work on the
  same engine works on a new backend;
- the application's exception leaves the block unchanged (also through a savepoint and a nested
  block);
- a statement on the dead connection raises ``ConnectionLostError`` chained to the driver's
  exception, where it failed (library engine) and when it leaves the block (any engine);
- a commit on it raises ``ConnectionLostError``;
- with only the library's stores in the unit of work (no ORM session: the transaction driven
  on the driver where the engine allows it), a statement after the loss and the commit raise
  ``ConnectionLostError`` even when the application caught the first one, and nothing of the
  unit of work is committed — never a fresh transaction on another connection;
- an unreachable server is ``ConnectionLostError`` as well.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.conftest import PG_URL
from tests.reliability.rel_faults import (
    admin_connect,
    app_name,
    backends,
    tagged_engine,
    wait_for,
)

from cqrs_ddd_core import StoredEvent
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.errors import ConnectionLostError, CQRSDDDError, DomainError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION, create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)

pytestmark = pytest.mark.postgres_only


class RelExitNote(AggregateRoot[str]):
    id: str
    text: str


class _Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class RelExitNoteModel(_Base):
    __tablename__ = "rel_exit_notes"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


notes = RelExitNoteModel.__table__
repo = SQLAlchemyRepository(RelExitNote, RelExitNoteModel)


def _engine(driver: str, schema: str, name: str, *, configured: bool = True) -> AsyncEngine:
    """An engine on ``schema`` whose connections are named ``name``; ``configured``: made by
    the library's ``create_engine`` (else SQLAlchemy's, without the library's set-up)."""
    options: dict[str, Any] = {"pool_size": 3, "max_overflow": 0}
    if driver == "asyncpg" and configured:
        return tagged_engine(schema, name, **options)
    url = make_url(PG_URL).set(drivername=f"postgresql+{driver}")
    if driver == "asyncpg":
        settings = {"search_path": f"{schema}, public", "application_name": name}
        options["connect_args"] = {"server_settings": settings}
    else:
        options["connect_args"] = {
            "options": f"-c search_path={schema},public",
            "application_name": name,
        }
        options["pool_pre_ping"] = True
    rendered = url.render_as_string(hide_password=False)
    make = create_engine if configured else create_async_engine
    return make(rendered, **options)


@pytest.fixture(params=["asyncpg", "psycopg"])
def driver(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _open(driver: str, schema: str, *, configured: bool = True) -> AsyncEngine:
    engine = _engine(driver, schema, app_name("rel-exit"), configured=configured)
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
        await conn.execute(sa.insert(notes).values(id="n1", text="kept"))
    return engine


@pytest.fixture
async def factory(driver: str, pg_schema: str) -> AsyncIterator[async_sessionmaker[Any]]:
    engine = await _open(driver, pg_schema)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def kill_backend(uow: SQLAlchemyUnitOfWork) -> int:
    """Terminate the backend of ``uow``'s connection; return once it has exited."""
    pid = (await uow.session.execute(sa.select(sa.func.pg_backend_pid()))).scalar_one()
    admin = await admin_connect()
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def gone() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
            return bool(await admin.fetchval(query, pid) == 0)

        await wait_for(gone)
    finally:
        await admin.close()
    return int(pid)


async def _next_works(factory: async_sessionmaker[Any], killed: int) -> None:
    """The next unit of work on the engine works, on another backend; nothing is left open."""
    async with SQLAlchemyUnitOfWork(factory) as uow:
        pid = (await uow.session.execute(sa.select(sa.func.pg_backend_pid()))).scalar_one()
        await uow.session.execute(sa.insert(notes).values(id=f"after-{killed}", text="x"))
        await uow.commit()
    assert pid != killed
    engine = factory.kw["bind"]
    assert engine.sync_engine.pool.checkedout() == 0
    async with SQLAlchemyUnitOfWork(factory) as uow:
        ids = set((await uow.session.execute(sa.select(notes.c.id))).scalars())
    assert f"after-{killed}" in ids and "lost" not in ids


def _assert_chained_to_driver(error: BaseException) -> None:
    assert isinstance(error, ConnectionLostError) and error.retryable, repr(error)
    cause = error.__cause__
    assert cause is not None and not isinstance(cause, CQRSDDDError), repr(cause)


async def test_rel_read_only_uow_returns_its_result(factory: async_sessionmaker[Any]) -> None:
    rolled_back: list[int] = []
    killed: list[int] = []

    async def read() -> RelExitNote | None:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            uow.after_rollback(lambda: rolled_back.append(1))
            found = await repo.get("n1")
            killed.append(await kill_backend(uow))
            return found

    for _ in range(3):  # more than once on the same pool
        note = await read()
        assert note is not None and note.text == "kept"
    assert rolled_back == [1, 1, 1]
    await _next_works(factory, killed[-1])


APPLICATION_ERRORS = [
    KeyError("k"),
    ConnectionResetError("the payment service hung up"),
    TimeoutError("the payment service timed out"),
    DomainError("an order total must be positive"),
]


@pytest.mark.parametrize("where", ["block", "savepoint", "nested"])
@pytest.mark.parametrize(
    "error", APPLICATION_ERRORS, ids=[type(e).__name__ for e in APPLICATION_ERRORS]
)
async def test_rel_application_exception_leaves_unchanged(
    factory: async_sessionmaker[Any], error: Exception, where: str
) -> None:
    rolled_back: list[int] = []
    killed = 0
    uow = SQLAlchemyUnitOfWork(factory)
    with pytest.raises(type(error)) as info:
        async with uow:
            uow.after_rollback(lambda: rolled_back.append(1))
            await uow.session.execute(sa.insert(notes).values(id="lost", text="x"))
            if where == "savepoint":
                async with uow.savepoint():
                    killed = await kill_backend(uow)
                    raise error
            elif where == "nested":
                async with uow:
                    killed = await kill_backend(uow)
                    raise error
            else:
                killed = await kill_backend(uow)
                raise error
    assert info.value is error
    assert error.__cause__ is None
    assert rolled_back == [1]
    await _next_works(factory, killed)


async def test_rel_statement_on_the_dead_connection_is_connection_lost(
    factory: async_sessionmaker[Any],
) -> None:
    with pytest.raises(ConnectionLostError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await uow.session.execute(sa.insert(notes).values(id="lost", text="x"))
            killed = await kill_backend(uow)
            with pytest.raises(ConnectionLostError) as inside:  # where it failed
                await uow.session.execute(sa.select(notes.c.id))
            _assert_chained_to_driver(inside.value)
            await uow.session.execute(sa.select(notes.c.id))  # not caught: leaves the block
    _assert_chained_to_driver(info.value)
    await _next_works(factory, killed)


async def test_rel_commit_on_the_dead_connection_is_connection_lost(
    factory: async_sessionmaker[Any],
) -> None:
    rolled_back: list[int] = []
    with pytest.raises(ConnectionLostError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            uow.after_rollback(lambda: rolled_back.append(1))
            await repo.add(RelExitNote(id="lost", text="x"))
            killed = await kill_backend(uow)
            await uow.commit()
    assert info.value.retryable
    assert rolled_back == [1]
    await _next_works(factory, killed)


async def test_rel_stores_only_uow_after_a_loss_commits_nothing(
    driver: str, pg_schema: str
) -> None:
    name = app_name("rel-exit-stores")
    engine = _engine(driver, pg_schema, name)
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
        await conn.run_sync(metadata.create_all)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    store = SQLAlchemyEventStore(factory, listen=False)
    outbox = SQLAlchemyOutboxStorage(factory)

    def event(aggregate: str) -> StoredEvent:
        return StoredEvent(event_type="Noted", aggregate_id=aggregate, payload={"n": 1})

    async def kill_idle_in_transaction() -> int:
        (pid,) = [b["pid"] for b in await backends(name) if b["state"] == "idle in transaction"]
        admin = await admin_connect()
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()

        async def gone() -> bool:
            return all(b["pid"] != pid for b in await backends(name))

        await wait_for(gone)
        return int(pid)

    try:
        with pytest.raises(ConnectionLostError) as info:
            async with SQLAlchemyUnitOfWork(factory) as uow:
                await store.append([event("first")], uow=uow)
                killed = await kill_idle_in_transaction()
                with pytest.raises(ConnectionLostError):
                    await store.append([event("second")], uow=uow)
                with pytest.raises(ConnectionLostError):  # caught, and tried again
                    await outbox.save_messages([OutboxMessage(event_type="Noted")], uow=uow)
                await uow.commit()
        assert info.value.retryable
        assert (await store.read_all())[0] == []
        assert await outbox.get_pending() == []
        await _next_works(factory, killed)
    finally:
        await engine.dispose()


async def test_rel_any_engine_translates_when_the_error_leaves_the_block(
    driver: str, pg_schema: str
) -> None:
    """An engine without the library's set-up: the statement raises SQLAlchemy's exception;
    leaving the block it is ``ConnectionLostError`` chained to it; the exit never raises."""
    engine = await _open(driver, pg_schema, configured=False)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    try:
        with pytest.raises(ConnectionLostError) as info:
            async with SQLAlchemyUnitOfWork(factory) as uow:
                killed = await kill_backend(uow)
                await uow.session.execute(sa.select(notes.c.id))
        assert isinstance(info.value.__cause__, sa.exc.DBAPIError)
        async with SQLAlchemyUnitOfWork(factory) as uow:
            note = await repo.get("n1")
            killed = await kill_backend(uow)
        assert note is not None
        await _next_works(factory, killed)
    finally:
        await engine.dispose()


async def test_rel_unreachable_database_is_connection_lost(driver: str) -> None:
    """Nothing listens on the port: the driver's refusal (asyncpg raises the socket's own
    ``ConnectionRefusedError``) is ``ConnectionLostError`` chained to it, not an ``OSError``
    that an application could not tell from its own."""
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = make_url(PG_URL).set(drivername=f"postgresql+{driver}", host="127.0.0.1", port=port)
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(ConnectionLostError) as info:
            async with SQLAlchemyUnitOfWork(engine) as uow:
                await uow.session.execute(sa.select(1))
        _assert_chained_to_driver(info.value)
    finally:
        await engine.dispose()
