"""The seed README's saga blocks, run as written (verbatim copies; only the names the README
leaves implicit — ``saga_step``, ``payment_service``, ``uow`` — are provided around them)."""

from __future__ import annotations

import ast
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_advanced_core.sagas import SagaStatus
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork

#: Features > 3. Sagas Pattern (SEED_README.md line 380), verbatim.
SAGAS_PATTERN = """from cqrs_ddd_advanced_core.sagas.state import SagaState

class OrderFulfillmentSaga(SagaState):
    order_id: str
    payment_id: str | None = None

    @saga_step(compensation="cancel_payment")
    async def process_payment(self, payment_service):
        self.payment_id = await payment_service.charge(self.order_id)

    async def cancel_payment(self, payment_service):
        await payment_service.refund(self.payment_id)

# Execute saga
saga = OrderFulfillmentSaga(order_id="123")
await saga.process_payment(payment_service)
await saga_repo.add(saga, uow=uow)
"""

#: Package Structure > 2. Advanced Package (SEED_README.md line 207), its saga lines verbatim.
ADVANCED_PACKAGE = """from cqrs_ddd_persistence_sqlalchemy.advanced import (
    SQLAlchemySagaRepository,
    SQLAlchemyProjectionStore,
)

# Saga
saga_repo = SQLAlchemySagaRepository(OrderFulfillmentSaga)
saga = OrderFulfillmentSaga(order_id="123")
await saga_repo.add(saga, uow=uow)
"""


class PaymentService:
    def __init__(self) -> None:
        self.charged: list[str] = []

    async def charge(self, order_id: str) -> str:
        self.charged.append(order_id)
        return f"pay-{order_id}"

    async def refund(self, payment_id: str | None) -> None:
        return None


async def _run(code: str, namespace: dict[str, Any]) -> None:
    compiled = compile(code, "<seed>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if result is not None:
        await result


async def test_seed_saga_blocks_run_as_written(library_tables: AsyncEngine) -> None:
    factory = async_sessionmaker(library_tables, expire_on_commit=False)
    from cqrs_ddd_advanced_core.sagas import saga_step

    namespace: dict[str, Any] = {"saga_step": saga_step, "payment_service": PaymentService()}
    definition, execution = SAGAS_PATTERN.split("# Execute saga\n")
    await _run(definition, namespace)
    saga_cls = namespace["OrderFulfillmentSaga"]
    async with SQLAlchemyUnitOfWork(session_factory=factory) as uow:
        namespace["uow"] = uow
        await _run(ADVANCED_PACKAGE, namespace)  # defines saga_repo, stores a fresh saga
        first = namespace["saga"]
        await _run(execution, namespace)
        second = namespace["saga"]
        await uow.commit()
    repo = namespace["saga_repo"]
    async with SQLAlchemyUnitOfWork(factory) as uow:
        stored_first = await repo.get(first.id, uow=uow)
        stored_second = await repo.get(second.id, uow=uow)
    assert isinstance(stored_first, saga_cls) and stored_first.status is SagaStatus.PENDING
    assert stored_second.status is SagaStatus.COMPLETED
    assert stored_second.payment_id == "pay-123"
    assert namespace["payment_service"].charged == ["123"]
