"""Engine construction with the settings the library relies on."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _sa_create_async_engine

from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.url import driver_connect_args
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite.engine import configure_sqlite_engine
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.guard import (
    DEFAULT_PING_AFTER,
    install_checkout_guard,
)
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import set_fast_path
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads

__all__ = ["configure_engine", "create_engine"]


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """``create_async_engine`` with the library's defaults.

    - PostgreSQL: dead pooled connections are replaced at checkout (survives server restarts
      and terminated backends), the library's JSON codec; ``statement_timeout_ms`` /
      ``lock_timeout_ms`` keyword arguments set the session timeouts. On asyncpg this is a
      free check of the socket plus a one-round-trip ping of connections idle for more than
      ``pool_ping_after`` seconds (default 5; see ``postgres/pool.py``) instead of
      SQLAlchemy's ``pool_pre_ping``, which costs three round trips on every checkout. Pass
      ``pool_pre_ping=True`` to get SQLAlchemy's ping back, ``pool_pre_ping=False`` to never
      ping (closed sockets are still caught). Other PostgreSQL drivers keep ``pool_pre_ping``.
      ``fast_path=False`` sends every statement through SQLAlchemy (the asyncpg fast path of
      ``execution/asyncpg`` is otherwise used where it applies; ``CQRS_FAST_PATH=0`` turns it
      off for the whole process).
      Query parameters of the URL reach the driver typed (``?statement_cache_size=0``,
      ``?sslmode=require``, ``?options=-c search_path=app``, psycopg's ``prepare_threshold``);
      one the driver does not accept raises ``ConfigurationError``
      (``dialects/postgresql/url.py``).
    - SQLite: ``BEGIN IMMEDIATE`` transactions, foreign keys, WAL, busy timeout
      (``lock_timeout_ms`` sets the busy timeout: how long a writer waits for the write lock).

    Example::

        engine = create_engine("sqlite+aiosqlite:///./app.db")
        engine = create_engine(
            "postgresql+asyncpg://postgres@127.0.0.1/app", statement_timeout_ms=5000
        )
    """
    parsed = make_url(url)
    statement_timeout = kwargs.pop("statement_timeout_ms", None)
    lock_timeout = kwargs.pop("lock_timeout_ms", None)
    ping_after = kwargs.pop("pool_ping_after", DEFAULT_PING_AFTER)
    fast_path = bool(kwargs.pop("fast_path", True))
    guard = False
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", json_loads)
    if parsed.get_backend_name() == "postgresql":
        parsed, connect_args = driver_connect_args(parsed, kwargs.pop("connect_args", None))
        if connect_args:
            kwargs["connect_args"] = connect_args
        if parsed.get_driver_name() == "asyncpg" and not kwargs.get("pool_pre_ping"):
            guard = True
            if kwargs.pop("pool_pre_ping", None) is False:
                ping_after = None
        else:
            kwargs.setdefault("pool_pre_ping", True)
        settings: dict[str, str] = {}
        if statement_timeout is not None:
            settings["statement_timeout"] = str(int(statement_timeout))
        if lock_timeout is not None:
            settings["lock_timeout"] = str(int(lock_timeout))
        if settings and parsed.get_driver_name() == "asyncpg":
            server_settings = {**connect_args.get("server_settings", {}), **settings}
            kwargs["connect_args"] = {**connect_args, "server_settings": server_settings}
    engine = _sa_create_async_engine(parsed, **kwargs)
    if guard:
        install_checkout_guard(engine, ping_after=ping_after)
    if not fast_path:
        set_fast_path(engine, False)
    if engine.dialect.name == "sqlite" and lock_timeout is not None:
        configure_sqlite_engine(engine, busy_timeout_ms=int(lock_timeout))
    return configure_engine(engine)


def configure_engine(engine: AsyncEngine) -> AsyncEngine:
    """Apply dialect set-up to an engine the application created itself."""
    if engine.dialect.name == "sqlite":
        configure_sqlite_engine(engine)
    return engine
