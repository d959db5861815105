"""The aggregate and event the contract suites use."""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent

__all__ = ["ContractOrder", "ContractOrderPlaced"]


class ContractOrderPlaced(DomainEvent):
    customer_id: str
    total: Decimal


class ContractOrder(AggregateRoot[str]):
    """Adapters under test map this to a table with columns id, customer_id, total, status."""

    id: str
    customer_id: str
    total: Decimal = Decimal("0")
    status: str = "pending"

    @classmethod
    def place(cls, order_id: str, customer_id: str, total: Decimal) -> ContractOrder:
        order = cls(id=order_id, customer_id=customer_id, total=total)
        order.add_event(ContractOrderPlaced(customer_id=customer_id, total=total))
        return order
