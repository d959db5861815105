"""Repository port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from cqrs_ddd_core.ports.search_result import SearchResult
from cqrs_ddd_core.ports.unit_of_work import IUnitOfWork

__all__ = ["IRepository"]

T = TypeVar("T")


class IRepository(Protocol[T]):
    """Collection-like access to aggregates. A repository never commits; the unit of work does.

    ``uow`` may be omitted inside ``async with uow:`` (the ambient unit of work is used).
    """

    async def add(self, entity: T, *, uow: IUnitOfWork | None = None) -> T: ...

    async def get(self, entity_id: Any, *, uow: IUnitOfWork | None = None) -> T | None: ...

    async def get_many(
        self, entity_ids: Sequence[Any], *, uow: IUnitOfWork | None = None
    ) -> list[T]: ...

    async def exists(self, entity_id: Any, *, uow: IUnitOfWork | None = None) -> bool: ...

    async def delete(self, entity: Any, *, uow: IUnitOfWork | None = None) -> None:
        """Delete by id, or by entity (then its version is checked)."""
        ...

    def search(
        self, spec_or_options: Any = None, options: Any = None, *, uow: IUnitOfWork | None = None
    ) -> SearchResult[T]: ...
