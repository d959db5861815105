from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from pydantic import PrivateAttr, ValidationError

from cqrs_ddd_core import AggregateRoot, DomainEvent, EventTypeRegistry, ValueObject
from cqrs_ddd_core.domain import default_registry, set_persisted_version
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot as SeedPathAggregateRoot
from cqrs_ddd_core.errors import EventTypeConflictError, SerializationError, UnknownEventTypeError


class Shipped(DomainEvent):
    carrier: str


class Money(ValueObject):
    amount: Decimal
    currency: str


class Order(AggregateRoot):
    id: str
    customer_id: str
    total: float
    status: str = "pending"

    def ship(self) -> None:
        self.status = "shipped"
        self.add_event(Shipped(carrier="dhl"))


class Counter(AggregateRoot[UUID]):
    count: int = 0

    def apply_Shipped(self, event: Shipped) -> None:
        self.count += 1


def test_seed_import_path_is_the_same_class() -> None:
    assert SeedPathAggregateRoot is AggregateRoot


def test_bare_aggregate_with_seed_fields() -> None:
    order = Order(id="123", customer_id="456", total=99.99)
    assert order.version == 0
    order.status = "shipped"
    with pytest.raises(AttributeError):
        order.version = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        order.total = "not a number"  # type: ignore[assignment]


def test_events_are_filled_pulled_and_cleared() -> None:
    order = Order(id="1", customer_id="c", total=1)
    order.ship()
    [event] = order.pull_domain_events()
    assert event.aggregate_id == "1" and event.aggregate_type == "Order"
    assert order.pull_domain_events() == []
    order.ship()
    assert len(order.collect_events()) == 1
    assert order.collect_events() == []


def test_domain_event_is_frozen_aware_and_versioned() -> None:
    event = Shipped(carrier="ups", aggregate_id=uuid4())
    assert event.occurred_at.tzinfo is not None
    assert isinstance(event.aggregate_id, str)
    assert event.version == 1
    with pytest.raises(ValidationError):
        event.carrier = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Shipped(carrier="x", occurred_at=datetime(2024, 1, 1))  # naive
    plus_two = timezone(timedelta(hours=2))
    shifted = Shipped(carrier="x", occurred_at=datetime(2024, 1, 1, 2, tzinfo=plus_two))
    assert shifted.occurred_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_value_objects_compare_by_value_and_are_frozen() -> None:
    one = Decimal("1.0")
    assert Money(amount=one, currency="EUR") == Money(amount=one, currency="EUR")
    m = Money(amount=Decimal(1), currency="EUR")
    with pytest.raises(ValidationError):
        m.currency = "USD"  # type: ignore[misc]
    assert m.replace(currency="USD") == Money(amount=Decimal(1), currency="USD")


def test_apply_counts_version_and_dispatches() -> None:
    counter = Counter(id=uuid4())
    counter.apply(Shipped(carrier="a"))
    counter.apply(Shipped(carrier="b"))
    assert (counter.count, counter.version) == (2, 2)
    counter.record(Shipped(carrier="c"))
    assert counter.count == 3 and len(counter.pending_events) == 1
    set_persisted_version(counter, 7)
    assert counter.version == 7


def test_subclasses_register_themselves() -> None:
    assert default_registry.resolve("Shipped") is Shipped
    with pytest.raises(UnknownEventTypeError, match="Shipped"):
        default_registry.resolve("Shiped")


def _rename_price(payload: dict[str, object]) -> dict[str, object]:
    data = dict(payload)
    data["amount"] = data.pop("price")
    return data


def test_registry_conflict_and_upcasting() -> None:
    registry = EventTypeRegistry()

    class PriceChanged(DomainEvent, event_type="PriceChangedTest", schema_version=3):
        amount: Decimal
        currency: str

    registry.register(PriceChanged)
    registry.add_upcaster("PriceChangedTest", 1, _rename_price)
    registry.add_upcaster("PriceChangedTest", 2, lambda p: {**p, "currency": "EUR"})
    event = registry.hydrate(
        "PriceChangedTest", {"price": "2.50"}, schema_version=1, envelope={"aggregate_id": "a"}
    )
    assert isinstance(event, PriceChanged)
    assert (event.amount, event.currency, event.version) == (Decimal("2.50"), "EUR", 3)

    # A different class under a taken name is refused (by the default registry at definition).
    with pytest.raises(EventTypeConflictError):

        class Other(DomainEvent, event_type="PriceChangedTest"):
            pass

    registry.add_upcaster("PriceChangedTest", 1, lambda p: p)
    with pytest.raises(SerializationError):
        registry.hydrate("PriceChangedTest", {"price": "1"}, schema_version=1)


class _Audited(AggregateRoot[str]):
    """An aggregate with a model_post_init and a private attribute of its own."""

    id: str
    touched: bool = False
    _note: str = PrivateAttr(default="new")

    def model_post_init(self, context: object, /) -> None:
        self.touched = True


class _AuditedChild(_Audited):
    pass


class _Renumbered(AggregateRoot[str]):
    """An aggregate that declares the library's private attribute again, with its own default."""

    id: str
    _version: int = PrivateAttr(default=7)


@pytest.mark.parametrize("build", ["init", "validate", "construct"])
def test_aggregates_start_with_their_own_private_state(build: str) -> None:
    # Every way of building an aggregate gives it version 0 and a pending-event list of its
    # own (the fast set-up replaces pydantic's, it must not share state between instances).
    made = {
        "init": lambda: Order(id="o", customer_id="c", total=1.0),
        "validate": lambda: Order.model_validate({"id": "o", "customer_id": "c", "total": 1.0}),
        "construct": lambda: Order.model_construct(id="o", customer_id="c", total=1.0),
    }[build]
    first, second = made(), made()
    assert (first.version, first.pending_events) == (0, ())
    first.ship()
    set_persisted_version(first, 4)
    assert (second.version, second.pending_events) == (0, ())
    assert first.version == 4 and len(first.pending_events) == 1


def test_an_aggregates_own_post_init_and_private_attributes_still_run() -> None:
    for cls in (_Audited, _AuditedChild):
        made = cls.model_validate({"id": "a"})
        assert made.touched is True  # its model_post_init ran
        assert made._note == "new"  # its private attribute has its default
        assert (made.version, made.pending_events) == (0, ())
        set_persisted_version(made, 2)
        assert made.version == 2
    assert _Renumbered.model_validate({"id": "r"}).version == 7  # its default, not ours
