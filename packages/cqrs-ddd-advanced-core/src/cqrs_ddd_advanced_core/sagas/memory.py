"""An in-memory saga repository (tests, prototypes) with the same semantics as the SQL one."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.domain.aggregate_root import set_persisted_version
from cqrs_ddd_core.errors import OptimisticConcurrencyError, UniqueViolationError

__all__ = ["InMemorySagaRepository"]

S = TypeVar("S", bound=SagaState)


class InMemorySagaRepository(Generic[S]):
    """Keeps copies of saved sagas; ``get`` returns a fresh copy (like a database would).

    Example::

        repo = InMemorySagaRepository(OrderFulfillmentSaga)
        await repo.add(saga)
    """

    def __init__(self, saga_cls: type[S]) -> None:
        self.saga_cls = saga_cls
        self._rows: dict[str, tuple[int, dict[str, Any]]] = {}

    async def add(self, saga: S, *, uow: Any = None) -> None:
        current = self._rows.get(saga.id)
        actual = current[0] if current else 0
        if actual != saga.version:
            raise OptimisticConcurrencyError(
                f"saga {saga.id}: expected version {saga.version}, found {actual}",
                entity_type=self.saga_cls.saga_type(),
                entity_id=saga.id,
                expected_version=saga.version,
                actual_version=actual,
            )
        if saga.correlation_id is not None:
            for sid, (_, data) in self._rows.items():
                if sid != saga.id and data.get("correlation_id") == saga.correlation_id:
                    raise UniqueViolationError(
                        f"a {self.saga_cls.saga_type()} saga with correlation id "
                        f"{saga.correlation_id!r} exists"
                    )
        self._rows[saga.id] = (actual + 1, saga.model_dump(mode="json"))
        set_persisted_version(saga, actual + 1)

    save = add

    async def get(self, saga_id: str, *, uow: Any = None) -> S | None:
        row = self._rows.get(str(saga_id))
        if row is None:
            return None
        saga = self.saga_cls.model_validate(row[1])
        set_persisted_version(saga, row[0])
        return saga

    async def find_by_correlation_id(
        self, correlation_id: str, saga_type: str | None = None, *, uow: Any = None
    ) -> S | None:
        if saga_type is not None and saga_type != self.saga_cls.saga_type():
            return None
        for sid, (_, data) in self._rows.items():
            if data.get("correlation_id") == correlation_id:
                return await self.get(sid)
        return None
