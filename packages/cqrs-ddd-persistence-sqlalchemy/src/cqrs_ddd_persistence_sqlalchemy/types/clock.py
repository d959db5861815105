"""``utcnow()``: the database's current UTC time, with sub-second precision on every dialect;
``utcclock()`` / ``utcclock_after(seconds)``: the database's wall clock now (not the
transaction's start) and that many seconds later — lease deadlines, so that the clocks of the
processes sharing a lease never matter.

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

__all__ = ["utcclock", "utcclock_after", "utcnow"]


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


class utcclock(FunctionElement[dt.datetime]):
    """The database's wall clock at the statement (``clock_timestamp()`` on PostgreSQL, not the
    transaction's start), as aware UTC."""

    type = UTCDateTime()
    inherit_cache = True
    name = "utcclock"


class utcclock_after(FunctionElement[dt.datetime]):
    """:class:`utcclock` plus a number of seconds (one argument: a float expression, e.g. a
    ``bindparam``)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "utcclock_after"


@compiles(utcclock)
def _clock_default(element: utcclock, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utcclock, "postgresql")
def _clock_postgresql(element: utcclock, compiler: SQLCompiler, **kw: Any) -> str:
    return "clock_timestamp()"


@compiles(utcclock, "sqlite")
def _clock_sqlite(element: utcclock, compiler: SQLCompiler, **kw: Any) -> str:
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


@compiles(utcclock_after, "postgresql")
def _after_postgresql(element: utcclock_after, compiler: SQLCompiler, **kw: Any) -> str:
    (seconds,) = element.clauses
    return (
        "(clock_timestamp() + make_interval(secs => CAST("
        f"{compiler.process(seconds, **kw)} AS DOUBLE PRECISION)))"
    )


@compiles(utcclock_after, "sqlite")
def _after_sqlite(element: utcclock_after, compiler: SQLCompiler, **kw: Any) -> str:
    (seconds,) = element.clauses
    # a modifier such as '+30.5 seconds'; same text form as utcnow (text order is time order)
    return (
        "(strftime('%Y-%m-%d %H:%M:%f', 'now', "
        f"'+' || CAST({compiler.process(seconds, **kw)} AS TEXT) || ' seconds'))"
    )
