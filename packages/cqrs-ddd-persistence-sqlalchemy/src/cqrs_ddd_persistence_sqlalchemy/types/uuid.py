"""``UUIDType``: native ``uuid`` on PostgreSQL, ``CHAR(32)`` elsewhere; ``uuid.UUID`` in Python.

SQLAlchemy 2's ``Uuid`` type already does exactly this; the alias keeps the seed's name.

Example:
    >>> id: Mapped[uuid.UUID] = mapped_column(UUIDType(), primary_key=True)
"""

from __future__ import annotations

from sqlalchemy import Uuid as UUIDType

__all__ = ["UUIDType"]
