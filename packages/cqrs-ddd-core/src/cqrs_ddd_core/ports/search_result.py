"""``SearchResult``: a lazy query result that is awaitable, streamable and countable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator
from typing import Any, Generic, TypeVar

__all__ = ["SearchResult"]

T = TypeVar("T")


class SearchResult(ABC, Generic[T]):
    """The result of ``repository.search(...)``; nothing runs until it is consumed.

    - ``await result`` loads the whole (paginated) result as a list;
    - ``async for item in result.stream(batch_size=500)`` streams with bounded memory;
    - ``await result.first()`` fetches at most one row;
    - ``await result.count()`` counts matching rows without loading them.
    """

    @abstractmethod
    async def all(self) -> list[T]:
        """Load every matching item."""

    @abstractmethod
    def stream(self, batch_size: int = 500) -> AsyncIterator[T]:
        """Yield matching items, fetching ``batch_size`` at a time."""

    @abstractmethod
    async def first(self) -> T | None:
        """The first matching item, or ``None``."""

    @abstractmethod
    async def count(self) -> int:
        """How many items match (ignoring limit and offset)."""

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.all().__await__()
