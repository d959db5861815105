"""``utcnow()``: the database's current UTC time, with sub-second precision on every dialect.

``func.now()`` is ``CURRENT_TIMESTAMP`` on SQLite, which has one-second precision; audit columns
need better to order rows written in the same second. The variants are registered the way
SQLAlchemy's own dialect-specific constructs are (``@compiles``).

Example:
    >>> created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=utcnow())
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cqrs_ddd_persistence_sqlalchemy.types.datetime import UTCDateTime

__all__ = ["utcnow"]


class utcnow(FunctionElement[dt.datetime]):
    """The current time of the database (transaction time on PostgreSQL), as aware UTC."""

    type = UTCDateTime()
    inherit_cache = True
    name = "utcnow"


@compiles(utcnow)
def _default(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utcnow, "postgresql")
def _postgresql(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(utcnow, "sqlite")
def _sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # same text form UTCDateTime writes (ISO, no offset, UTC), so text order is time order
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"
