"""How the projection stores take their bind, and where one of their operations runs its
statements (the execution seam)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution, Executor
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["one_bind", "single"]


def one_bind(bind: Any, session_factory: Any, owner: str) -> Any:
    """The bind given positionally or as ``bind=``, or as the seed's ``session_factory=``."""
    if bind is not None and session_factory is not None:
        raise ConfigurationError(
            f"{owner}: pass the bind once (positionally, bind= or session_factory=), not twice"
        )
    return bind if bind is not None else session_factory


@asynccontextmanager
async def single(
    binding: Binding, uow: SQLAlchemyUnitOfWork | None
) -> AsyncIterator[Executor | Execution]:
    """The runner of an operation whose statements are each atomic on their own: the joined
    unit of work's (or bound session's) executor, else the engine's :class:`Execution` (one
    autocommit round trip per statement where the dialect allows it, the fast path for kept
    statements), else a short transaction."""
    execution = binding.own_execution(uow)
    if execution is not None:
        yield execution
        return
    async with binding.transaction(uow) as executor:
        yield executor
