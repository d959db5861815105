"""``SearchResult`` over an in-memory list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from cqrs_ddd_core.ports.search_result import SearchResult

__all__ = ["ListSearchResult"]

T = TypeVar("T")


class ListSearchResult(SearchResult[T]):
    """A search result computed by ``load`` (called on each consumption)."""

    def __init__(self, load: Callable[[], list[T]], count: Callable[[], int]) -> None:
        self._load = load
        self._count = count

    async def all(self) -> list[T]:
        return self._load()

    async def stream(self, batch_size: int = 500) -> AsyncIterator[T]:
        for item in self._load():
            yield item

    async def first(self) -> T | None:
        items = self._load()
        return items[0] if items else None

    async def count(self) -> int:
        return self._count()
