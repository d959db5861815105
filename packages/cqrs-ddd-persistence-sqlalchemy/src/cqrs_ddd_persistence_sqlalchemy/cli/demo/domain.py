"""The demo's order-fulfilment domain: an aggregate, its events, a saga, its services, jobs.

Event and saga type names are prefixed with ``demo.`` so that they never clash with an
application's own types registered in the same process.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_advanced_core.jobs import BackgroundJob, Backoff, JobContext
from cqrs_ddd_advanced_core.sagas import saga_step
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import DomainError
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION

__all__ = [
    "DemoBase",
    "LoyaltyAccount",
    "Order",
    "OrderFulfillmentSaga",
    "OrderModel",
    "OrderPaid",
    "OrderPlaced",
    "OrderShipped",
    "Payments",
    "PointsEarned",
    "SendInvoice",
    "SendPaymentReminder",
    "Shipping",
    "Warehouse",
    "recovery_orchestrators",
]


# -- the aggregate -------------------------------------------------------------------------
class OrderPlaced(DomainEvent, event_type="demo.OrderPlaced"):
    customer_id: str
    total: Decimal


class OrderPaid(DomainEvent, event_type="demo.OrderPaid"):
    payment_id: str


class OrderShipped(DomainEvent, event_type="demo.OrderShipped"):
    carrier: str


class Order(AggregateRoot[str]):
    id: str
    customer_id: str
    total: Decimal
    status: str = "placed"

    @classmethod
    def place(cls, order_id: str, customer_id: str, total: Decimal) -> Order:
        order = cls(id=order_id, customer_id=customer_id, total=total)
        order.add_event(OrderPlaced(customer_id=customer_id, total=total))
        return order

    def mark_paid(self, payment_id: str) -> None:
        if self.status != "placed":
            raise DomainError(f"order {self.id} is {self.status}")
        self.status = "paid"
        self.add_event(OrderPaid(payment_id=payment_id))

    def ship(self, carrier: str) -> None:
        if self.status != "paid":
            raise DomainError(f"order {self.id} is {self.status}, not paid")
        self.status = "shipped"
        self.add_event(OrderShipped(carrier=carrier))


class DemoBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderModel(VersionMixin, DemoBase):
    __tablename__ = "demo_orders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[str] = mapped_column(String(16))


# -- the saga and the services it calls ------------------------------------------------------
class Warehouse:
    def __init__(self) -> None:
        self.reserved: dict[str, int] = {}
        self.log: list[str] = []

    async def reserve(self, order_id: str, items: int) -> None:
        self.reserved[order_id] = items
        self.log.append(f"reserved {items} item(s) for {order_id}")

    async def release(self, order_id: str) -> None:
        self.reserved.pop(order_id, None)
        self.log.append(f"released the stock of {order_id}")


class Payments:
    def __init__(self) -> None:
        self.captured: dict[str, Decimal] = {}
        self.log: list[str] = []

    async def charge(self, order_id: str, amount: Decimal) -> str:
        payment_id = f"pay-{order_id}"
        self.captured[payment_id] = amount
        self.log.append(f"charged {amount} for {order_id}")
        return payment_id

    async def refund(self, payment_id: str) -> None:
        amount = self.captured.pop(payment_id)
        self.log.append(f"refunded {amount} ({payment_id})")


class Shipping:
    """Refuses addresses it cannot deliver to (that is what makes the second saga compensate)."""

    def __init__(self, undeliverable: set[str]) -> None:
        self.undeliverable = undeliverable
        self.log: list[str] = []

    async def book(self, order_id: str, address: str) -> str:
        if address in self.undeliverable:
            self.log.append(f"cannot deliver {order_id} to {address!r}")
            raise DomainError(f"no carrier delivers to {address!r}")
        self.log.append(f"booked a courier for {order_id}")
        return "DHL"


class OrderFulfillmentSaga(SagaState):
    """Reserve stock, take the payment, book the courier — or undo what was done."""

    __saga_type__ = "demo.OrderFulfillment"

    order_id: str
    amount: Decimal
    address: str
    payment_id: str | None = None
    carrier: str | None = None

    @saga_step(compensation="release_stock")
    async def reserve_stock(
        self, warehouse: Warehouse, payments: Payments, shipping: Shipping
    ) -> None:
        await warehouse.reserve(self.order_id, 1)

    async def release_stock(
        self, warehouse: Warehouse, payments: Payments, shipping: Shipping
    ) -> None:
        await warehouse.release(self.order_id)

    @saga_step(compensation="refund_payment")
    async def take_payment(
        self, warehouse: Warehouse, payments: Payments, shipping: Shipping
    ) -> None:
        self.payment_id = await payments.charge(self.order_id, self.amount)

    async def refund_payment(
        self, warehouse: Warehouse, payments: Payments, shipping: Shipping
    ) -> None:
        if self.payment_id is not None:
            await payments.refund(self.payment_id)

    @saga_step()
    async def book_courier(
        self, warehouse: Warehouse, payments: Payments, shipping: Shipping
    ) -> None:
        self.carrier = await shipping.book(self.order_id, self.address)


# -- background jobs and scheduled commands ----------------------------------------------------
class SendInvoice(BackgroundJob):
    """E-mails an invoice; the mail server times out on the first attempt for ``flaky`` ones."""

    __job_type__: ClassVar[str | None] = "demo.SendInvoice"
    __backoff__: ClassVar[Backoff] = Backoff(base=0.2, factor=2.0, maximum=2.0)

    order_id: str
    flaky: bool = False

    async def execute(self, ctx: JobContext) -> dict[str, str]:
        if self.flaky and self.attempts == 0:
            raise ConnectionError("SMTP server timed out")
        await ctx.progress(1.0, "sent")
        return {"sent": f"invoice-{self.order_id}.pdf"}


class SendPaymentReminder(BaseModel):
    """A command scheduled for later: remind a customer of an unpaid order."""

    __command_type__: ClassVar[str] = "demo.SendPaymentReminder"

    order_id: str


def recovery_orchestrators(session_factory: Any) -> list[Any]:
    """For ``cqrs-ddd-sqla sagas recover -o ...demo.domain:recovery_orchestrators``."""
    from cqrs_ddd_advanced_core.sagas import SagaOrchestrator
    from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemySagaRepository

    repo = SQLAlchemySagaRepository(OrderFulfillmentSaga, session_factory)
    services = (Warehouse(), Payments(), Shipping(undeliverable={"Atlantis"}))
    return [SagaOrchestrator(repo, args=services)]


# -- an event-sourced aggregate --------------------------------------------------------------
class PointsEarned(DomainEvent, event_type="demo.PointsEarned"):
    points: int


class LoyaltyAccount(AggregateRoot[str]):
    """Event-sourced: its state is the fold of its events (``apply_<event type>`` handlers,
    non-word characters of the type name as ``_``)."""

    id: str
    points: int = 0
    purchases: int = 0

    def earn(self, points: int) -> None:
        self.record(PointsEarned(points=points))

    def apply_demo_PointsEarned(self, event: PointsEarned) -> None:
        self.points += event.points
        self.purchases += 1
