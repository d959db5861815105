"""The table behind ``Order`` (the repository maps fields by name)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin


class Base(DeclarativeBase):
    pass


class OrderModel(VersionMixin, Base):
    __tablename__ = "example_orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[str] = mapped_column(String(20), index=True)
    carrier: Mapped[str | None] = mapped_column(String(50))
