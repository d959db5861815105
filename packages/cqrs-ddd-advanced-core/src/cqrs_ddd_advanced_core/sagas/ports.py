"""The saga repository port."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from cqrs_ddd_advanced_core.sagas.state import SagaState

__all__ = ["ISagaRepository"]

S = TypeVar("S", bound=SagaState)


@runtime_checkable
class ISagaRepository(Protocol, Generic[S]):
    """Stores sagas of one class with optimistic concurrency.

    ``add`` inserts a new saga or updates a loaded one (checking its version); a stale saga
    raises ``OptimisticConcurrencyError``.
    """

    async def add(self, saga: S, *, uow: Any = None) -> None: ...

    async def get(self, saga_id: str, *, uow: Any = None) -> S | None: ...

    async def find_by_correlation_id(
        self, correlation_id: str, saga_type: str | None = None, *, uow: Any = None
    ) -> S | None: ...
