"""Sagas shared by the saga tests (also imported by the subprocess worker)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from cqrs_ddd_advanced_core.sagas import saga_step
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.domain.events import DomainEvent


class Recorder:
    """Appends effects to a list and, optionally, to a file (visible across processes)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.items: list[str] = []

    def append(self, item: str) -> None:
        self.items.append(item)
        if self.path is not None:
            with self.path.open("a") as fh:
                fh.write(item + "\n")

    def read(self) -> list[str]:
        if self.path is None:
            return list(self.items)
        return self.path.read_text().split() if self.path.exists() else []


class ThreeStepSaga(SagaState):
    fail_at: str | None = None
    fail_compensation: str | None = None

    async def _do(self, name: str, rec: Recorder) -> None:
        if self.fail_at == name:
            raise RuntimeError(f"{name} failed")
        rec.append(name)

    async def _undo(self, name: str, rec: Recorder) -> None:
        if self.fail_compensation == name:
            raise RuntimeError(f"undo {name} failed")
        rec.append(f"undo_{name}")

    @saga_step(compensation="undo_one")
    async def one(self, rec: Recorder) -> None:
        await self._do("one", rec)

    @saga_step(compensation="undo_two")
    async def two(self, rec: Recorder) -> None:
        await self._do("two", rec)

    @saga_step(compensation="undo_three")
    async def three(self, rec: Recorder) -> None:
        await self._do("three", rec)

    async def undo_one(self, rec: Recorder) -> None:
        await self._undo("one", rec)

    async def undo_two(self, rec: Recorder) -> None:
        await self._undo("two", rec)

    async def undo_three(self, rec: Recorder) -> None:
        await self._undo("three", rec)


class SagaTestPaymentCaptured(DomainEvent):
    amount: int = 0


class PaymentWaitSaga(SagaState):
    order_id: str
    paid: int = 0

    @saga_step(compensation="release")
    async def reserve(self, rec: Recorder) -> None:
        rec.append("reserve")

    @saga_step(on_event=SagaTestPaymentCaptured, timeout=timedelta(seconds=60))
    async def on_paid(self, event: Any, rec: Recorder) -> None:
        self.paid += event.amount
        rec.append("paid")

    @saga_step
    async def ship(self, rec: Recorder) -> None:
        rec.append("ship")

    async def release(self, rec: Recorder) -> None:
        rec.append("release")


class OrderFulfillmentSaga(SagaState):
    """The seed README's example, as written."""

    order_id: str
    payment_id: str | None = None

    @saga_step(compensation="cancel_payment")
    async def process_payment(self, payment_service):  # type: ignore[no-untyped-def]
        self.payment_id = await payment_service.charge(self.order_id)

    async def cancel_payment(self, payment_service):  # type: ignore[no-untyped-def]
        await payment_service.refund(self.payment_id)


class PaymentService:
    def __init__(self) -> None:
        self.refunded: list[str | None] = []

    async def charge(self, order_id: str) -> str:
        return f"pay-{order_id}"

    async def refund(self, payment_id: str | None) -> None:
        self.refunded.append(payment_id)
