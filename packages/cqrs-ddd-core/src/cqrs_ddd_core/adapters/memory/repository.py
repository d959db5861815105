"""In-memory repository with the same optimistic-concurrency rules as the SQL one."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from cqrs_ddd_core.adapters.memory._uow import resolve, run_in_uow
from cqrs_ddd_core.adapters.memory.search_result import ListSearchResult
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_core.ports.search_result import SearchResult

__all__ = ["InMemoryRepository"]

A = TypeVar("A", bound=AggregateRoot[Any])


class InMemoryRepository(Generic[A]):
    """Keeps copies of aggregates; ``search`` takes any object with ``is_satisfied_by``.

    Options (``order_by``, ``limit``, ``offset``) are read from an options object by
    attribute name, so ``cqrs_ddd_specifications.QueryOptions`` works as is.
    """

    def __init__(self, entity_cls: type[A]) -> None:
        self.entity_cls = entity_cls
        self._rows: dict[Any, tuple[A, int]] = {}

    # -- writes ----------------------------------------------------------------------------
    async def add(self, entity: A, *, uow: Any = None) -> A:
        loaded = entity.version
        new_version = loaded + 1
        snapshot = copy.deepcopy(entity)
        joined = resolve(uow)

        def check() -> None:
            current = self._rows.get(entity.id)
            actual = current[1] if current else 0
            if actual != loaded:
                raise OptimisticConcurrencyError(
                    f"{self.entity_cls.__name__} {entity.id!r}: expected version {loaded}, "
                    f"found {actual if current else 'no row'}",
                    entity_type=self.entity_cls.__name__,
                    entity_id=entity.id,
                    expected_version=loaded,
                    actual_version=actual if current else None,
                )

        def apply() -> None:
            set_persisted_version(snapshot, new_version)
            self._rows[entity.id] = (snapshot, new_version)

        run_in_uow(joined, apply, check=check)
        if joined is None:
            set_persisted_version(entity, new_version)
        else:
            joined.register(entity, new_version=new_version)
        return entity

    async def delete(self, entity: Any, *, uow: Any = None) -> None:
        is_entity = isinstance(entity, AggregateRoot)
        key = entity.id if is_entity else entity
        expected = entity.version if is_entity else None

        def check() -> None:
            current = self._rows.get(key)
            if current is None or (expected is not None and current[1] != expected):
                raise OptimisticConcurrencyError(
                    f"{self.entity_cls.__name__} {key!r} was changed or deleted concurrently",
                    entity_type=self.entity_cls.__name__,
                    entity_id=key,
                    expected_version=expected,
                    actual_version=current[1] if current else None,
                )

        def apply() -> None:
            self._rows.pop(key, None)

        if not is_entity and key not in self._rows:
            return
        run_in_uow(uow, apply, check=check)

    # -- reads -----------------------------------------------------------------------------
    def _copy(self, key: Any) -> A | None:
        row = self._rows.get(key)
        if row is None:
            return None
        entity = copy.deepcopy(row[0])
        set_persisted_version(entity, row[1])
        return entity

    async def get(self, entity_id: Any, *, uow: Any = None) -> A | None:
        return self._copy(entity_id)

    async def get_many(self, entity_ids: Sequence[Any], *, uow: Any = None) -> list[A]:
        return [e for e in (self._copy(i) for i in entity_ids) if e is not None]

    async def list_all(self, *, uow: Any = None) -> list[A]:
        return [e for e in (self._copy(k) for k in list(self._rows)) if e is not None]

    async def exists(self, entity_id: Any, *, uow: Any = None) -> bool:
        return entity_id in self._rows

    def search(
        self, spec_or_options: Any = None, options: Any = None, *, uow: Any = None
    ) -> SearchResult[A]:
        spec = spec_or_options
        if options is None and spec is not None and not hasattr(spec, "is_satisfied_by"):
            spec, options = None, spec

        def matching() -> list[A]:
            items = [e for e in (self._copy(k) for k in list(self._rows)) if e is not None]
            if spec is not None:
                items = [e for e in items if spec.is_satisfied_by(e)]
            return items

        def load() -> list[A]:
            items = matching()
            for field in reversed(list(getattr(options, "order_by", None) or [])):
                name = str(field)
                desc = name.startswith("-")
                attr = name.lstrip("-+")

                def key(e: A, attr: str = attr) -> tuple[int, Any]:
                    return _sort_key(getattr(e, attr, None))

                items.sort(key=key, reverse=desc)
            offset = getattr(options, "offset", None) or 0
            limit = getattr(options, "limit", None)
            return items[offset : offset + limit if limit is not None else None]

        return ListSearchResult(load, lambda: len(matching()))


def _sort_key(value: Any) -> tuple[int, Any]:
    # NULLs last ascending, as PostgreSQL does by default.
    return (1, 0) if value is None else (0, value)
