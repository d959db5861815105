"""What leaves a unit of work: the block's own exception, database errors as library errors.

On both databases: an application exception passes unchanged (also through a savepoint and a
nested ``async with uow``), a driver error from the caller's ``uow.session.execute(...)`` is the
library's error chained to the driver's (at the call site on a library engine, at the latest when
it leaves the block), a failed commit raises a library error. On SQLite, a connection closed under
the unit of work (the PostgreSQL faults, killed backends, are in
``tests/reliability/test_rel_uow_exit.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from repo_models import Counter, CounterModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from tests.conftest import pg_connect_args, schema_of

from cqrs_ddd_core.errors import (
    ConnectionLostError,
    CQRSDDDError,
    DomainError,
    MissingSchemaError,
    UniqueViolationError,
)
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    current_uow,
)
from cqrs_ddd_persistence_sqlalchemy.errors import register_metadata_for_sqlite_constraints

counters = CounterModel.__table__

# Exceptions an application raises inside a unit of work; translate() would read some of them
# as database failures (OSError, TimeoutError as a lost connection, UnicodeError as bad data).
APPLICATION_ERRORS = [
    KeyError("k"),
    ValueError("bad input"),
    OSError("file missing"),
    ConnectionResetError("the payment service hung up"),
    TimeoutError("the payment service timed out"),
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    DomainError("an order total must be positive"),
]


def _ids(errors: list[BaseException]) -> list[str]:
    return [type(e).__name__ for e in errors]


async def _insert(uow: SQLAlchemyUnitOfWork, row_id: str) -> None:
    await uow.session.execute(sa.insert(counters).values(id=row_id, value=0, version=1))


async def _stored(factory: async_sessionmaker[Any]) -> set[str]:
    async with SQLAlchemyUnitOfWork(factory) as uow:
        return set((await uow.session.execute(sa.select(counters.c.id))).scalars())


@pytest.fixture
def factory(repo_engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(repo_engine, expire_on_commit=False)


@pytest.mark.parametrize("error", APPLICATION_ERRORS, ids=_ids(APPLICATION_ERRORS))
async def test_application_exception_leaves_unchanged(
    factory: async_sessionmaker[Any], error: Exception
) -> None:
    rolled_back: list[bool] = []
    with pytest.raises(type(error)) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "a")
            uow.after_rollback(lambda: rolled_back.append(True))
            raise error
    assert info.value is error
    assert error.__cause__ is None
    assert rolled_back == [True]
    assert await _stored(factory) == set()


@pytest.mark.parametrize("error", APPLICATION_ERRORS, ids=_ids(APPLICATION_ERRORS))
async def test_application_exception_leaves_a_savepoint_and_a_nested_block_unchanged(
    factory: async_sessionmaker[Any], error: Exception
) -> None:
    uow = SQLAlchemyUnitOfWork(factory)
    async with uow:
        await _insert(uow, "kept")
        with pytest.raises(type(error)) as info:
            async with uow.savepoint():
                await _insert(uow, "undone")
                raise error
        assert info.value is error
        with pytest.raises(type(error)) as info:
            async with uow:  # nested: joins the same transaction
                await _insert(uow, "nested")
                raise error
        assert info.value is error
        assert current_uow() is uow and uow.active
        await uow.commit()
    assert await _stored(factory) == {"kept", "nested"}


async def test_nested_block_leaves_no_ambient_unit_of_work(
    factory: async_sessionmaker[Any],
) -> None:
    uow = SQLAlchemyUnitOfWork(factory)
    async with uow:
        async with uow:
            assert current_uow() is uow
        assert current_uow() is uow and uow.active
    assert current_uow() is None and not uow.active
    outer, inner = SQLAlchemyUnitOfWork(factory), SQLAlchemyUnitOfWork(factory)
    async with outer:
        async with inner, inner:
            assert current_uow() is inner
        assert current_uow() is outer
    assert current_uow() is None


def _assert_chained_to_driver(error: BaseException) -> None:
    cause = error.__cause__
    assert cause is not None and not isinstance(cause, CQRSDDDError), repr(cause)


async def test_driver_error_from_session_execute_is_a_library_error(
    factory: async_sessionmaker[Any],
) -> None:
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await _insert(uow, "dup")
        await uow.commit()
    # caught where it happened, inside the block: the transaction goes on
    async with SQLAlchemyUnitOfWork(factory) as uow:
        with pytest.raises(UniqueViolationError) as info:
            async with uow.savepoint():
                await _insert(uow, "dup")
        _assert_chained_to_driver(info.value)
        await _insert(uow, "other")
        await uow.commit()
    # not caught: it leaves the block as the library error
    with pytest.raises(UniqueViolationError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "dup")
    _assert_chained_to_driver(info.value)
    with pytest.raises(MissingSchemaError) as missing:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await uow.session.execute(sa.text("SELECT * FROM no_such_table"))
    _assert_chained_to_driver(missing.value)
    assert await _stored(factory) == {"dup", "other"}


@pytest.fixture
async def plain_engine(repo_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The same database through an engine the library did not configure."""
    schema = schema_of(repo_engine)
    url = repo_engine.url.render_as_string(hide_password=False)
    connect_args = pg_connect_args(url, search_path=f"{schema}, public") if schema else {}
    engine = create_async_engine(repo_engine.url, connect_args=connect_args)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_driver_error_is_translated_when_it_leaves_the_block_on_any_engine(
    plain_engine: AsyncEngine,
) -> None:
    """Without the library's engine set-up the statement raises SQLAlchemy's exception; the
    unit of work translates it on the way out, chained to it."""
    factory = async_sessionmaker(plain_engine, expire_on_commit=False)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await _insert(uow, "dup")
        await uow.commit()
    with pytest.raises(UniqueViolationError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "dup")
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    # and nothing else is: an application error passes unchanged here too
    error = TimeoutError("the payment service timed out")
    with pytest.raises(TimeoutError) as raised:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "x")
            raise error
    assert raised.value is error


codes_md = sa.MetaData()
codes = sa.Table(
    "uow_exit_codes",
    codes_md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(20), nullable=False),
    sa.UniqueConstraint("code", name="uq_uow_exit_codes_code"),
)
register_metadata_for_sqlite_constraints(codes_md)


class CodeTaken(DomainError):
    pass


async def test_a_stores_constraint_meaning_applies_inside_a_unit_of_work(
    repo_engine: AsyncEngine, factory: async_sessionmaker[Any]
) -> None:
    """The statement already raised ``UniqueViolationError``; the store's ``constraints=``
    still turn it into what the constraint means to the store."""
    async with repo_engine.begin() as conn:
        await conn.run_sync(codes_md.create_all)
    source = Binding()
    meaning = {"uq_uow_exit_codes_code": lambda error: CodeTaken(f"code taken: {error}")}
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await uow.session.execute(sa.insert(codes).values(id=1, code="a"))
        with pytest.raises(CodeTaken):
            async with uow.savepoint():
                async with source.session(uow, constraints=meaning) as session:
                    await session.execute(sa.insert(codes).values(id=2, code="a"))
        with pytest.raises(UniqueViolationError):  # the other constraint: no meaning given
            async with uow.savepoint():
                async with source.session(uow, constraints=meaning) as session:
                    await session.execute(sa.insert(codes).values(id=1, code="b"))
        await uow.commit()


async def test_statements_outside_a_unit_of_work_keep_sqlalchemy_exceptions(
    repo_engine: AsyncEngine,
) -> None:
    """The call-site translation is the unit of work's: migrations and the application's own
    use of the engine see SQLAlchemy's exceptions."""
    with pytest.raises(sa.exc.DBAPIError):
        async with repo_engine.connect() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table"))


async def test_failed_commit_raises_a_library_error(factory: async_sessionmaker[Any]) -> None:
    async def bad_hook(uow: SQLAlchemyUnitOfWork) -> None:
        await uow.session.execute(sa.text("SELECT * FROM no_such_table"))

    rolled_back: list[bool] = []
    with pytest.raises(MissingSchemaError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "a")
            uow.before_commit(bad_hook)
            uow.after_rollback(lambda: rolled_back.append(True))
            await uow.commit()
    _assert_chained_to_driver(info.value)
    assert rolled_back == [True]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await _insert(uow, "b")
        await uow.commit()
    with pytest.raises(UniqueViolationError):
        async with SQLAlchemyUnitOfWork(factory) as uow:
            uow.session.add(CounterModel(id="b", value=1))  # flushed by the commit
            await uow.commit()
    assert await _stored(factory) == {"b"}


# -- SQLite: a connection closed under the unit of work -------------------------------------


async def _close_connection(uow: SQLAlchemyUnitOfWork) -> None:
    raw = await (await uow.session.connection()).get_raw_connection()
    await raw.driver_connection.close()


@pytest.mark.sqlite_only
async def test_sqlite_closed_connection_exit_never_raises(
    factory: async_sessionmaker[Any],
) -> None:
    repo = SQLAlchemyRepository(Counter, CounterModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(Counter(id="c1", value=3))
        await uow.commit()
    rolled_back: list[bool] = []

    async def read() -> Counter | None:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            found = await repo.get("c1")
            uow.after_rollback(lambda: rolled_back.append(True))
            await _close_connection(uow)
            return found

    found = await read()
    assert found is not None and found.value == 3
    assert rolled_back == [True]
    error = ConnectionResetError("the payment service hung up")
    with pytest.raises(ConnectionResetError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "lost")
            await _close_connection(uow)
            raise error
    assert info.value is error
    assert await _stored(factory) == {"c1"}  # the pool replaced the closed connection


@pytest.mark.sqlite_only
async def test_sqlite_closed_connection_statement_and_commit_raise_connection_lost(
    factory: async_sessionmaker[Any],
) -> None:
    with pytest.raises(ConnectionLostError) as info:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "a")
            await _close_connection(uow)
            with pytest.raises(ConnectionLostError) as inside:
                await _insert(uow, "b")
            _assert_chained_to_driver(inside.value)
            raise inside.value
    assert info.value is inside.value
    with pytest.raises(ConnectionLostError):
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await _insert(uow, "c")
            await _close_connection(uow)
            await uow.commit()  # a commit on a closed connection is no success
    assert await _stored(factory) == set()
    for _ in range(3):  # every pooled connection works again
        await asyncio.gather(*(_stored(factory) for _ in range(3)))
