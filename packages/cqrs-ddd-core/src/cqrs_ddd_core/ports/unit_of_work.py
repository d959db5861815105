"""Unit of work port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

__all__ = ["AfterCommitHook", "IUnitOfWork"]

AfterCommitHook = Callable[[], Awaitable[None] | None]


@runtime_checkable
class IUnitOfWork(Protocol):
    """One transaction: rolled back on exit unless :meth:`commit` was awaited."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    def after_commit(self, hook: AfterCommitHook) -> None:
        """Run ``hook`` once the current transaction has committed."""
        ...
