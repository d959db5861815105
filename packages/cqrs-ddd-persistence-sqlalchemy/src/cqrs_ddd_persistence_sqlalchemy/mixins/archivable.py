"""``ArchivableModelMixin``: soft delete.

``SQLAlchemyRepository`` hides archived rows by default (``include_archived=True`` shows them),
``delete`` archives instead of deleting, ``restore`` brings a row back. Each archivable table gets
a partial index over its archived rows (``WHERE archived_at IS NOT NULL``, PostgreSQL and SQLite),
and :meth:`ArchivableModelMixin.live_unique` declares uniqueness among live rows only.

Example:
    >>> class CustomerModel(ArchivableModelMixin, Base):
    ...     __tablename__ = "customers"
    ...     id: Mapped[str] = mapped_column(primary_key=True)
    ...     email: Mapped[str] = mapped_column(String(200))
    ...     __table_args__ = (ArchivableModelMixin.live_unique("customers", "email"),)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import String, event
from sqlalchemy.orm import Mapped, Mapper, declared_attr, mapped_column

from cqrs_ddd_persistence_sqlalchemy.mixins.managed import managed
from cqrs_ddd_persistence_sqlalchemy.types.datetime import UTCDateTime

__all__ = ["ArchivableModelMixin"]


class ArchivableModelMixin:
    """Adds ``archived_at`` (aware UTC, NULL while live) and ``archived_by``."""

    @declared_attr
    def archived_at(cls) -> Mapped[dt.datetime | None]:
        return mapped_column(UTCDateTime(), nullable=True, default=None, info=managed())

    @declared_attr
    def archived_by(cls) -> Mapped[str | None]:
        return mapped_column(String(255), nullable=True, default=None, info=managed())

    @staticmethod
    def live_unique(table_name: str, *columns: str, name: str | None = None) -> sa.Index:
        """A unique index over ``columns`` among live rows (``WHERE archived_at IS NULL``).

        Put it in ``__table_args__``; archived rows may then repeat the values.
        """
        live = sa.text("archived_at IS NULL")
        return sa.Index(
            name or f"uq_{table_name}_{'_'.join(columns)}_live",
            *columns,
            unique=True,
            postgresql_where=live,
            sqlite_where=live,
        )


@event.listens_for(ArchivableModelMixin, "instrument_class", propagate=True)
def _archived_index(mapper: Mapper[Any], cls: type[Any]) -> None:
    table = mapper.local_table
    if not isinstance(table, sa.Table) or "archived_at" not in table.c:
        return
    name = f"ix_{table.name}_archived"
    if any(index.name == name for index in table.indexes):
        return
    archived = table.c.archived_at.is_not(None)
    sa.Index(name, table.c.archived_at, postgresql_where=archived, sqlite_where=archived)
