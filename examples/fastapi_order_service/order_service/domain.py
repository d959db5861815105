"""The order aggregate and its domain events (no persistence code here)."""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import DomainError


class OrderPlaced(DomainEvent, event_type="example.OrderPlaced"):
    customer_id: str
    total: Decimal


class OrderShipped(DomainEvent, event_type="example.OrderShipped"):
    carrier: str


class Order(AggregateRoot[str]):
    id: str
    customer_id: str
    total: Decimal
    status: str = "placed"
    carrier: str | None = None

    @classmethod
    def place(cls, order_id: str, customer_id: str, total: Decimal) -> Order:
        if total <= 0:
            raise DomainError("an order total must be positive")
        order = cls(id=order_id, customer_id=customer_id, total=total)
        order.add_event(OrderPlaced(customer_id=customer_id, total=total))
        return order

    def ship(self, carrier: str) -> None:
        if self.status != "placed":
            raise DomainError(f"order {self.id} is {self.status}, it cannot be shipped")
        self.status = "shipped"
        self.carrier = carrier
        self.add_event(OrderShipped(carrier=carrier))
