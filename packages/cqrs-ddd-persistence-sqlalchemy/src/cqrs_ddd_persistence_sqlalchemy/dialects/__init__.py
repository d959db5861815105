"""Dialect support: everything that differs between databases, behind one interface.

:func:`dialect_for` is the only place that looks at a dialect's name: it resolves the
:class:`~.interface.DialectSupport` of a SQLAlchemy dialect (or of anything that has one: an
engine, a connection, a session) once and caches it on the dialect instance. Each supported
database has its own sub-package (``postgresql/``, ``sqlite/``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect, make_url

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects.interface import DialectSupport as DialectSupport
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql import PostgresDialect
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite import SqliteDialect

__all__ = [
    "SUPPORTED",
    "DialectSupport",
    "dialect_for",
    "support_for_url",
    "support_named",
    "with_default_driver",
]

#: SQLAlchemy dialect name -> the library's support for it.
SUPPORTED: dict[str, DialectSupport] = {
    "postgresql": PostgresDialect(),
    "sqlite": SqliteDialect(),
}


def dialect_for(obj: Any) -> DialectSupport:
    """The dialect support of ``obj``: a SQLAlchemy ``Dialect``, or an engine, connection or
    session (sync or async) bound to one.

    Raises:
        ConfigurationError: the database is not one the library supports.
    """
    dialect = obj if isinstance(obj, Dialect) else _dialect_of(obj)
    support = SUPPORTED.get(dialect.name)
    if support is None:
        raise ConfigurationError(f"the library supports {sorted(SUPPORTED)}, not {dialect.name!r}")
    return support


def support_named(name: str) -> DialectSupport:
    """The dialect support of the SQLAlchemy dialect called ``name`` (``"postgresql"``,
    ``"sqlite"``): for user-facing settings that name a dialect
    (``build_sqla_filter(..., dialect="postgresql")``, ``registry.add(op, fn, dialect="sqlite")``).

    Raises:
        ConfigurationError: the library supports no dialect of that name.
    """
    found = SUPPORTED.get(name)
    if found is None:
        raise ConfigurationError(f"the library supports {sorted(SUPPORTED)}, not {name!r}")
    return found


def support_for_url(url: str | URL) -> DialectSupport:
    """The dialect support of a database URL (before any engine exists).

    Raises:
        ConfigurationError: the URL is malformed or names a database the library does not
            support.
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    found = SUPPORTED.get(backend)
    if found is None:
        drivers = ", ".join(f"{name}+{s.default_driver}://" for name, s in SUPPORTED.items())
        raise ConfigurationError(f"unsupported database {backend!r}: use {drivers}")
    return found


def with_default_driver(url: str) -> str:
    """``url`` with the default async driver when it names none (``postgresql://`` ->
    ``postgresql+asyncpg://``); other URLs unchanged. Only the scheme is rewritten:
    re-rendering a URL would percent-quote its database part."""
    support = support_for_url(url)
    if make_url(url).drivername == support.name:
        return f"{support.name}+{support.default_driver}" + url[url.index("://") :]
    return url


def _dialect_of(obj: Any) -> Dialect:
    dialect = getattr(obj, "dialect", None)
    if dialect is None and hasattr(obj, "get_bind"):
        dialect = obj.get_bind().dialect  # a session
    if not isinstance(dialect, Dialect):
        raise ConfigurationError(f"cannot tell the database of {type(obj).__name__}")
    return dialect
