"""``VersionMixin``: the optimistic-concurrency column."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from cqrs_ddd_persistence_sqlalchemy.mixins.managed import managed

__all__ = ["VersionMixin"]


class VersionMixin:
    """Adds ``version INTEGER NOT NULL DEFAULT 1``.

    ``SQLAlchemyRepository`` writes it with ``UPDATE … WHERE id = :id AND version = :loaded``.
    Models used through the ORM directly get it as ``version_id_col`` too, so a stale flush raises
    (``SQLAlchemyUnitOfWork`` reports it as ``OptimisticConcurrencyError``).

    Example:
        >>> class OrderModel(VersionMixin, Base):
        ...     __tablename__ = "orders"
        ...     id: Mapped[str] = mapped_column(String, primary_key=True)
    """

    @declared_attr
    def version(cls) -> Mapped[int]:
        return mapped_column(Integer, nullable=False, default=1, info=managed())

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]
