"""Dialect support: everything that differs between databases, behind one interface.

:func:`dialect_for` is the only place that looks at a dialect's name: it resolves the
:class:`~.interface.DialectSupport` of a SQLAlchemy dialect (or of anything that has one: an
engine, a connection, a session) once and caches it on the dialect instance. Each supported
database has its own sub-package (``postgresql/``, ``sqlite/``).
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects.interface import DialectSupport as DialectSupport
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql import PostgresDialect
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite import SqliteDialect

__all__ = ["SUPPORTED", "DialectSupport", "dialect_for"]

#: SQLAlchemy dialect name -> the library's support for it.
SUPPORTED: dict[str, DialectSupport] = {
    "postgresql": PostgresDialect(),
    "sqlite": SqliteDialect(),
}

_RESOLVED: WeakKeyDictionary[Dialect, DialectSupport] = WeakKeyDictionary()


def dialect_for(obj: Any) -> DialectSupport:
    """The dialect support of ``obj``: a SQLAlchemy ``Dialect``, or an engine, connection or
    session (sync or async) bound to one.

    Raises:
        ConfigurationError: the database is not one the library supports.
    """
    dialect = obj if isinstance(obj, Dialect) else _dialect_of(obj)
    support = _RESOLVED.get(dialect)
    if support is None:
        found = SUPPORTED.get(dialect.name)
        if found is None:
            raise ConfigurationError(
                f"the library supports {sorted(SUPPORTED)}, not {dialect.name!r}"
            )
        support = _RESOLVED[dialect] = found
    return support


def _dialect_of(obj: Any) -> Dialect:
    dialect = getattr(obj, "dialect", None)
    if dialect is None and hasattr(obj, "get_bind"):
        dialect = obj.get_bind().dialect  # a session
    if not isinstance(dialect, Dialect):
        raise ConfigurationError(f"cannot tell the database of {type(obj).__name__}")
    return dialect
