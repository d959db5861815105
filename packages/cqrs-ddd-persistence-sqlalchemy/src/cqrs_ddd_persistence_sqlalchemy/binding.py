"""The one bind rule: what every store and worker is built with, and how an operation finds
its connection.

Every store accepts the same ``bind``, positionally or by keyword:

- an ``AsyncEngine`` — operations outside a unit of work run on its pool;
- an ``async_sessionmaker`` (or any ``sessionmaker``-like factory with a ``bind``) — the same,
  on the factory's engine;
- an ``AsyncSession`` — operations join that session's transaction (the caller commits);
- a ``SQLAlchemyUnitOfWork`` — operations join it while it is active;
- a factory of units of work (``lambda: SQLAlchemyUnitOfWork(session_factory)``) or of
  sessions — resolved on first use (it is called once, to find the engine behind it);
- ``None`` — only ``uow=`` or the ambient unit of work (``async with uow:``).

Anything else fails at construction with a ``ConfigurationError`` that says what was given.

Query-side reads (``Binding.reading`` / ``Binding.read_session``: the repository's ``get`` and
``search``, the projection store's reads, the event store's ``read_all`` / ``subscribe``) that
join no unit of work and no bound session run on a replica when the engine behind the bind has
replicas (``create_engine(url, replicas=[...])``, see ``replicas/``); without replicas they run
exactly as any other operation.

An operation then runs, in order of precedence, in the ``uow=`` argument, the ambient unit of
work, the unit of work or session the store was built with, or — with an engine behind the
bind — on its own: one statement atomic on its own (``Execution.fetch``) or a short transaction
(``Binding.transaction``). A store never commits a unit of work it did not open.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.base import Executable

from cqrs_ddd_core.errors import ConfigurationError, UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy.binding_scopes import Joined
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.errors import ConstraintErrors, translating
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import (
    Execution,
    Executor,
    StatementRunner,
)
from cqrs_ddd_persistence_sqlalchemy.execution.reference import ConnectionExecutor
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.replicas.reads import (
    replica_read,
    replica_reading,
    replica_session,
)
from cqrs_ddd_persistence_sqlalchemy.replicas.registry import replicas_attached, replicas_of
from cqrs_ddd_persistence_sqlalchemy.replicas.routing import ReplicaSet
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork, current_uow

__all__ = ["Bind", "Binding", "SessionSource", "is_bind"]

_T = TypeVar("_T")

#: What a store may be built with (see the module docstring).
Bind = (
    AsyncEngine
    | async_sessionmaker[AsyncSession]
    | AsyncSession
    | SQLAlchemyUnitOfWork
    | Callable[[], Any]
    | None
)

_ACCEPTED = (
    "an AsyncEngine, an async_sessionmaker, an AsyncSession, a SQLAlchemyUnitOfWork or a "
    "factory of units of work"
)


def is_bind(value: Any) -> bool:
    """Whether ``value`` is something a store can be built with (``None`` excluded)."""
    return isinstance(
        value, AsyncEngine | AsyncSession | SQLAlchemyUnitOfWork | async_sessionmaker
    ) or (callable(value) and not isinstance(value, type))


class Binding:
    """Resolves, for one store, where each operation runs (see the module docstring).

    Args:
        bind: what the store was built with.
        owner: the store's name, for error messages.
    """

    __slots__ = ("_engine", "_factory", "_lazy", "_owner", "_replicas", "_session", "_uow")

    def __init__(self, bind: Any = None, *, owner: str = "the store") -> None:
        self._owner = owner
        self._uow: SQLAlchemyUnitOfWork | None = None
        self._session: AsyncSession | None = None
        self._factory: Callable[[], AsyncSession] | None = None
        self._engine: AsyncEngine | None = None
        self._lazy: Callable[[], Any] | None = None
        self._replicas: ReplicaSet | bool | None = False  # False: not looked up yet
        if bind is None:
            return
        if isinstance(bind, Binding):
            self._uow, self._session = bind._uow, bind._session
            self._factory, self._engine, self._lazy = bind._factory, bind._engine, bind._lazy
        elif isinstance(bind, SQLAlchemyUnitOfWork):
            self._uow = bind
        elif isinstance(bind, AsyncSession):
            ambient = current_uow()
            if ambient is not None and ambient.owns_session(bind):
                # ``SQLAlchemyEventStore(uow.session)`` (the seed's pattern): the store belongs
                # to that unit of work, and runs on its transaction like a store built on it.
                self._uow = ambient
            else:
                self._session = bind
                self._engine = bind.bind if isinstance(bind.bind, AsyncEngine) else None
        elif isinstance(bind, AsyncEngine):
            self._engine = bind
            self._factory = async_sessionmaker(bind, expire_on_commit=False)
        elif isinstance(bind, async_sessionmaker):
            self._factory = bind
            engine = bind.kw.get("bind")
            self._engine = engine if isinstance(engine, AsyncEngine) else None
        elif callable(bind) and not isinstance(bind, type):
            self._lazy = bind
        else:
            raise ConfigurationError(
                f"{owner} cannot be built from {type(bind).__name__} ({bind!r:.80}): "
                f"pass {_ACCEPTED}"
            )

    # -- what the bind resolves to ---------------------------------------------------------
    def _resolve_lazy(self) -> None:
        """Call a factory of units of work or sessions once, to learn what is behind it."""
        lazy, self._lazy = self._lazy, None
        if lazy is None:
            return
        made = lazy()
        if isinstance(made, SQLAlchemyUnitOfWork):
            factory = made.session_factory
            if factory is not None:
                self._adopt_factory(factory)
            else:
                self._session = made.borrowed_session
        elif isinstance(made, AsyncSession):
            # A factory of sessions: keep calling it for our own transactions.
            self._factory = lazy
            self._engine = made.bind if isinstance(made.bind, AsyncEngine) else None
            # The probe session was never used: nothing to close but its object.
        else:
            raise ConfigurationError(
                f"{self._owner} was built with a factory returning {type(made).__name__}; "
                f"a factory must return a SQLAlchemyUnitOfWork or an AsyncSession (or pass "
                f"{_ACCEPTED})"
            )

    def _adopt_factory(self, factory: Callable[[], AsyncSession]) -> None:
        self._factory = factory
        engine = getattr(factory, "kw", {}).get("bind")
        self._engine = engine if isinstance(engine, AsyncEngine) else None

    @property
    def engine(self) -> AsyncEngine | None:
        """The engine behind the bind, if one can be known without a unit of work."""
        if self._lazy is not None:
            self._resolve_lazy()
        if self._engine is None and self._uow is not None:
            factory = self._uow.session_factory
            if factory is not None:
                engine = getattr(factory, "kw", {}).get("bind")
                self._engine = engine if isinstance(engine, AsyncEngine) else None
        return self._engine

    @property
    def session_factory(self) -> Callable[[], AsyncSession] | None:
        """The session factory of the store's own transactions, if any."""
        if self._lazy is not None:
            self._resolve_lazy()
        return self._factory

    @property
    def bound_session(self) -> AsyncSession | None:
        """The session the store was built with (its writes join that session)."""
        if self._lazy is not None:
            self._resolve_lazy()
        return self._session

    def execution(self) -> Execution | None:
        """The execution of the engine behind the bind (``None`` without an engine)."""
        engine = self.engine
        return execution_for(engine) if engine is not None else None

    def dialect(self, uow: Any = None) -> DialectSupport:
        """The dialect of the database an operation with ``uow`` runs on."""
        joined = self.resolve_uow(uow)
        if joined is not None:
            return dialect_for(joined.dialect)
        if self.bound_session is not None:
            return dialect_for(self.bound_session.get_bind().dialect)
        engine = self.engine
        if engine is None:
            raise self._no_database()
        return dialect_for(engine.dialect)

    # -- per operation -----------------------------------------------------------------------
    def traced_engine(self, uow: Any = None) -> AsyncEngine | None:
        """The engine an operation with ``uow`` is traced against (its spans' database
        attributes, ``create_engine(..., tracing=False)``): the bind's, else the joined unit of
        work's, else ``None``."""
        engine = self.engine
        if engine is None:
            joined = self.resolve_uow(uow)
            engine = joined.engine if joined is not None else None
        return engine

    def resolve_uow(self, uow: Any = None) -> SQLAlchemyUnitOfWork | None:
        """The unit of work an operation joins, if any."""
        if uow is not None:
            if not isinstance(uow, SQLAlchemyUnitOfWork):
                raise ConfigurationError(
                    f"uow must be a SQLAlchemyUnitOfWork, got {type(uow).__name__}"
                )
            if not uow.active:
                raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")
            return uow
        ambient = current_uow()
        if ambient is not None:
            return ambient
        if self._uow is not None and self._uow.active:
            return self._uow
        return None

    def owns_transaction(self, uow: Any = None) -> bool:
        """Whether an operation with this ``uow`` argument runs in a transaction of its own."""
        return self.resolve_uow(uow) is None and self.bound_session is None

    def own_execution(self, uow: Any = None) -> Execution | None:
        """The execution to run an operation on its own, or ``None`` when it joins a unit of
        work or the bound session."""
        if not self.owns_transaction(uow):
            return None
        return self.execution()

    def single(self, uow: Any = None) -> AbstractAsyncContextManager[StatementRunner]:
        """Where statements that are each atomic on their own run: the joined unit of work's
        (or bound session's) executor, else the engine's :class:`Execution` (one autocommit
        round trip per statement where the dialect allows it; kept statements on the fast
        path), else a short transaction."""
        joined = self.resolve_uow(uow)
        if joined is not None:
            return Joined(joined, None)
        if self.bound_session is None:
            execution = self.execution()
            if execution is not None:
                # It translates errors itself.
                return nullcontext(execution)
        return self._own_transaction(None)

    async def fetch(
        self, statement: Executable, params: Mapping[str, Any] | None = None, uow: Any = None
    ) -> Sequence[Sequence[Any]]:
        """Rows of one read statement, run where :meth:`single` says."""
        async with self.single(uow) as runner:
            return await runner.fetch(statement, params)

    @asynccontextmanager
    async def session(
        self, uow: Any = None, *, constraints: ConstraintErrors | None = None
    ) -> AsyncIterator[AsyncSession]:
        """The session of one ORM operation; committed only if this call opened it."""
        joined = self.resolve_uow(uow)
        with translating(constraints=constraints):
            if joined is not None:
                await joined.write_deferred()  # held-back writes first (uow/deferred.py)
                yield joined.session
                return
            if self.bound_session is not None:
                yield self.bound_session
                return
            factory = self.session_factory
            if factory is None:
                raise self._no_database()
            async with factory() as session, session.begin():
                yield session

    def transaction(
        self, uow: Any = None, *, constraints: ConstraintErrors | None = None
    ) -> AbstractAsyncContextManager[Executor]:
        """The executor of one multi-statement operation: the joined unit of work's (or bound
        session's) connection, or a short transaction of its own."""
        joined = self.resolve_uow(uow)
        if joined is not None:
            return Joined(joined, constraints)
        return self._own_transaction(constraints)

    @asynccontextmanager
    async def _own_transaction(
        self, constraints: ConstraintErrors | None
    ) -> AsyncIterator[Executor]:
        with translating(constraints=constraints):
            if self.bound_session is not None:
                yield ConnectionExecutor(await self.bound_session.connection())
                return
            execution = self.execution()
            if execution is not None:
                async with execution.transaction() as executor:
                    yield executor
                return
            async with self.session() as session:
                yield ConnectionExecutor(await session.connection())

    # -- query-side reads ------------------------------------------------------------------------
    @property
    def replicas(self) -> ReplicaSet | None:
        """The replica set of the engine behind the bind, if it has one."""
        found = self._replicas
        if found is False:
            if not replicas_attached():
                return None  # no engine of the process has replicas: nothing to look up
            found = replicas_of(self.engine)
            if found is None:
                return None  # looked up again next time: replicas may be attached later
            self._replicas = found
        return found  # type: ignore[return-value]

    def reading(self, uow: Any = None) -> AbstractAsyncContextManager[StatementRunner]:
        """Where the statements of one query-side read run: as :meth:`single`, except that
        outside a unit of work and a bound session, with replicas, on a replica (the primary
        when none can serve it, see ``replicas/routing.py``)."""
        replicas = self.replicas
        if replicas is None or not self.owns_transaction(uow):
            return self.single(uow)
        return replica_reading(replicas, self._primary_execution())

    def read_session(self, uow: Any = None) -> AbstractAsyncContextManager[AsyncSession]:
        """The session of one query-side ORM read: as :meth:`session`, except that outside a
        unit of work and a bound session, with replicas, on a replica."""
        replicas = self.replicas
        if replicas is None or not self.owns_transaction(uow):
            return self.session(uow)
        return replica_session(replicas, self.session)

    async def read(self, read: Callable[[AsyncSession], Awaitable[_T]], uow: Any = None) -> _T:
        """``await read(session)`` on the session :meth:`read_session` gives; on a replica
        found gone, again on the primary."""
        replicas = self.replicas
        if replicas is None or not self.owns_transaction(uow):
            async with self.session(uow) as session:
                return await read(session)
        return await replica_read(replicas, read, self.session)

    def _primary_execution(self) -> Execution:
        execution = self.execution()
        assert execution is not None  # replicas are found through an engine
        return execution

    def _no_database(self) -> UnitOfWorkError:
        return UnitOfWorkError(
            f"{self._owner}: no unit of work is active and it was built without an engine or "
            "session factory: pass uow=, use 'async with uow:', or build it with "
            f"{_ACCEPTED}"
        )


class SessionSource(Binding):
    """Deprecated: :class:`Binding` (the one bind rule)."""

    __slots__ = ()

    def __init__(self, bind: Any = None) -> None:
        warnings.warn(
            "SessionSource is deprecated and will be removed in the next release: use "
            "cqrs_ddd_persistence_sqlalchemy.binding.Binding",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(bind)
