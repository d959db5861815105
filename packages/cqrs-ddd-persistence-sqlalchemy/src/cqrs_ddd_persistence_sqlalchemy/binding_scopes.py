"""The scope ``Binding.transaction`` and ``Binding.single`` hand out in a unit of work: its
executor, database errors raised in the block translated.

A class, not an ``asynccontextmanager`` generator: every statement a store runs in a unit of
work enters one, and an async generator's setup costs about four times as much as these methods.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Literal

from cqrs_ddd_persistence_sqlalchemy.errors import ConstraintErrors, translating
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["Joined"]


class Joined(translating):
    """``Binding.transaction`` / ``single`` in a unit of work: its executor, database errors
    raised in the block translated (its own ``translating``: one object per statement)."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SQLAlchemyUnitOfWork, constraints: ConstraintErrors | None) -> None:
        super().__init__(constraints=constraints)
        self._uow = uow

    async def __aenter__(self) -> Executor:
        try:
            return await self._uow.executor()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)
