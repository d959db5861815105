"""How a store finds the session for one operation.

Order of precedence: the ``uow=`` argument, the ambient unit of work (``async with uow:``),
the unit of work or session the store was built with, and finally a session factory / engine
the store was built with — then the store opens, commits and closes a short transaction of its
own. A store never commits a unit of work it did not open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError, UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy.core.unit_of_work import SQLAlchemyUnitOfWork, current_uow
from cqrs_ddd_persistence_sqlalchemy.errors import ConstraintErrors, translating

__all__ = ["SessionSource", "StoreBind"]

#: What a store may be constructed with.
StoreBind = (
    AsyncSession | SQLAlchemyUnitOfWork | AsyncEngine | Callable[[], AsyncSession] | None
)


class SessionSource:
    """Resolves the session of an operation for a store (see module docstring)."""

    def __init__(self, bind: StoreBind = None) -> None:
        self._uow: SQLAlchemyUnitOfWork | None = None
        self._session: AsyncSession | None = None
        self._factory: Callable[[], AsyncSession] | None = None
        if isinstance(bind, SQLAlchemyUnitOfWork):
            self._uow = bind
        elif isinstance(bind, AsyncSession):
            self._session = bind
        elif isinstance(bind, AsyncEngine):
            self._factory = async_sessionmaker(bind, expire_on_commit=False)
        elif bind is None or callable(bind):
            self._factory = bind
        else:
            raise ConfigurationError(
                f"cannot build a store from {type(bind).__name__}: pass a session, a session "
                "factory, an engine or a unit of work"
            )

    @property
    def factory(self) -> Callable[[], AsyncSession] | None:
        return self._factory

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

    @asynccontextmanager
    async def session(
        self, uow: Any = None, *, constraints: ConstraintErrors | None = None
    ) -> AsyncIterator[AsyncSession]:
        """Yield the session to use; commit it only if this call opened it."""
        joined = self.resolve_uow(uow)
        with translating(constraints=constraints):
            if joined is not None:
                yield joined.session
            elif self._session is not None:
                yield self._session
            elif self._factory is not None:
                async with self._factory() as session, session.begin():
                    yield session
            else:
                raise UnitOfWorkError(
                    "no unit of work is active and the store has no session factory: pass "
                    "uow=, use 'async with uow:', or build the store with a session factory"
                )

    def owns_transaction(self, uow: Any = None) -> bool:
        """Whether an operation with this ``uow`` argument runs in a transaction of its own."""
        return self.resolve_uow(uow) is None and self._session is None
