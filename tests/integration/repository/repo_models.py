"""Domain and table models shared by the repository integration tests."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Integer, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.entity import Entity, ValueObject
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.mixins import (
    ArchivableModelMixin,
    AuditableModelMixin,
    VersionMixin,
)
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime, UUIDType


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ContractOrderModel(VersionMixin, Base):
    __tablename__ = "contract_orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[str] = mapped_column(String(32))


class Kind(enum.Enum):
    RETAIL = "retail"
    WHOLESALE = "wholesale"


class Address(ValueObject):
    street: str
    city: str


class Money(ValueObject):
    amount: Decimal
    currency: str


class OrderLine(Entity[str]):
    id: str
    sku: str
    qty: int
    price: Decimal


class RichOrder(AggregateRoot[uuid.UUID]):
    id: uuid.UUID
    customer: str
    kind: Kind = Kind.RETAIL
    placed_at: dt.datetime
    shipping: Address | None = None
    budget: Money | None = None
    tags: list[str] = []
    lines: list[OrderLine] = []
    created_at: dt.datetime | None = None


class RichOrderModel(VersionMixin, AuditableModelMixin, Base):
    __tablename__ = "rich_orders"

    id: Mapped[uuid.UUID] = mapped_column(UUIDType(), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    shipping_street: Mapped[str | None] = mapped_column(String(100), nullable=True)
    shipping_city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    budget: Mapped[Any] = mapped_column(JSONType(), nullable=True)
    tags: Mapped[Any] = mapped_column(JSONType())
    lines: Mapped[list[OrderLineModel]] = relationship(order_by="OrderLineModel.position")


class OrderLineModel(Base):
    __tablename__ = "rich_order_lines"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rich_orders.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, autoincrement=False, default=0)
    sku: Mapped[str] = mapped_column(String(32))
    qty: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))


class Counter(AggregateRoot[str]):
    id: str
    value: int = 0


class CounterModel(VersionMixin, Base):
    __tablename__ = "counters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class Item(AggregateRoot[int]):
    id: int
    n: int
    name: str


class ItemModel(VersionMixin, Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(64))


class Customer(AggregateRoot[str]):
    id: str
    email: str
    archived_at: dt.datetime | None = None
    archived_by: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class CustomerModel(VersionMixin, AuditableModelMixin, ArchivableModelMixin, Base):
    __tablename__ = "customers_arch"
    __table_args__ = (ArchivableModelMixin.live_unique("customers_arch", "email"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(200))


class BasketItem(Entity[str]):
    id: str
    tags: list[str] = []


class Basket(AggregateRoot[str]):
    id: str
    items: list[BasketItem] = []


class BasketModel(VersionMixin, Base):
    __tablename__ = "baskets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    items: Mapped[list[BasketItemModel]] = relationship(order_by="BasketItemModel.id")


class BasketItemModel(Base):
    __tablename__ = "basket_items"

    basket_id: Mapped[str] = mapped_column(ForeignKey("baskets.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tags: Mapped[Any] = mapped_column(JSONType())
