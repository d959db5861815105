"""Mapped classes the compiled-SQL unit tests compile against."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geography, Geometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str | None] = mapped_column(sa.String(20))
    total: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    quantity: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ref: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    description: Mapped[str | None] = mapped_column(sa.Text, info={"fts_config": "english"})
    meta: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", sa.JSON().with_variant(JSONB(), "postgresql")
    )
    location: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326), nullable=True)
    area: Mapped[Any] = mapped_column(Geography("POLYGON", srid=4326), nullable=True)
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customers.id"))
    customer: Mapped[Customer | None] = relationship(back_populates="orders")
