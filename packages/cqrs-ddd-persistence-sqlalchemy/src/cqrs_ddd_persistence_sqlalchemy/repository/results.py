"""``SQLAlchemySearchResult``: a lazy repository query.

Nothing runs until the result is consumed:

- ``await result`` (or ``await result.all()``) runs the query once and returns a
  :class:`ResultList` (a ``list``);
- ``async for item in result.stream(batch_size=500)`` reads through a server-side cursor
  (``yield_per``) and loads children per batch, so memory stays bounded;
- ``await result.first()`` adds ``LIMIT 1``; ``await result.count()`` runs ``COUNT(*)`` over the
  filter (limit/offset ignored).

Filtering, ordering and paging are all in SQL; nothing is filtered in Python.

The seed README also writes ``(await repo.search(spec, options)).stream()`` and
``await (await repo.search(...))``; a :class:`ResultList` supports both (it is awaitable and has
``stream()``), but it is already loaded: bounded-memory streaming is
``repo.search(spec, options).stream()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cqrs_ddd_core.ports.search_result import SearchResult

__all__ = ["ResultList", "SQLAlchemySearchResult"]

T = TypeVar("T")

#: ``hydrate(session, rows) -> entities`` (children included).
Hydrate = Callable[[AsyncSession, list[Any]], Awaitable[list[Any]]]
#: ``session_scope()`` -> an async context manager yielding the session to use.
SessionScope = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class ResultList(list[T]):
    """A loaded page of results: a plain ``list`` that also answers the seed's spellings.

    ``next_cursor`` is the keyset cursor of the next page when the query was limited and the
    page is full (``None`` otherwise).
    """

    next_cursor: str | None = None

    def __await__(self) -> Generator[Any, None, ResultList[T]]:
        if False:  # pragma: no cover - makes this a generator function
            yield None
        return self

    async def stream(self, batch_size: int = 500) -> AsyncIterator[T]:
        for item in self:
            yield item


class SQLAlchemySearchResult(SearchResult[T], Generic[T]):
    """A repository query over ``statement`` (already filtered), consumed lazily.

    Built by :meth:`SQLAlchemyRepository.search`; not meant to be constructed directly.
    """

    def __init__(
        self,
        *,
        statement: sa.Select[Any],
        paged: sa.Select[Any],
        count_statement: sa.Select[Any],
        session_scope: SessionScope,
        hydrate: Hydrate,
        cursor_of: Callable[[Any], str] | None = None,
        limit: int | None = None,
    ) -> None:
        self._statement = statement
        self._paged = paged
        self._count = count_statement
        self._scope = session_scope
        self._hydrate = hydrate
        self._cursor_of = cursor_of
        self._limit = limit

    @property
    def statement(self) -> sa.Select[Any]:
        """The SELECT that :meth:`all` runs (filter, ordering and paging applied)."""
        return self._paged

    async def all(self) -> ResultList[T]:
        async with self._scope() as session:
            rows = list((await session.execute(self._paged)).all())
            items: ResultList[T] = ResultList(await self._hydrate(session, rows))
        if self._cursor_of is not None and self._limit and rows and len(rows) == self._limit:
            items.next_cursor = self._cursor_of(rows[-1]._mapping)
        return items

    async def stream(self, batch_size: int = 500) -> AsyncIterator[T]:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        async with self._scope() as session:
            result = await session.stream(self._paged.execution_options(yield_per=batch_size))
            try:
                async for partition in result.partitions(batch_size):
                    for item in await self._hydrate(session, list(partition)):
                        yield item
            finally:
                await result.close()

    async def first(self) -> T | None:
        async with self._scope() as session:
            rows = list((await session.execute(self._paged.limit(1))).all())
            items = await self._hydrate(session, rows)
        return items[0] if items else None

    async def count(self) -> int:
        async with self._scope() as session:
            return int((await session.execute(self._count)).scalar_one())

    def __await__(self) -> Generator[Any, None, ResultList[T]]:
        return self.all().__await__()
