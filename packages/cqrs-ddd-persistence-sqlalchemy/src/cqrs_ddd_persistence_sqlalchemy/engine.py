"""Engine construction with the settings the library relies on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _sa_create_async_engine

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for, support_for_url
from cqrs_ddd_persistence_sqlalchemy.errors import database_error
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.guard import DEFAULT_PING_AFTER
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import (
    install_pooler,
    pool_checks,
    set_fast_path,
)
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import set_tracing
from cqrs_ddd_persistence_sqlalchemy.pooling import Pooler, check_pooler_mode
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads
from cqrs_ddd_persistence_sqlalchemy.uow import current_uow

__all__ = ["configure_engine", "create_engine"]


def create_engine(
    url: str | URL,
    *,
    replicas: Sequence[str | URL] = (),
    max_replica_lag: float = 5.0,
    read_your_writes_timeout: float = 0.5,
    replica_check_interval: float = 1.0,
    **kwargs: Any,
) -> AsyncEngine:
    """``create_async_engine`` with the library's defaults.

    - PostgreSQL: dead pooled connections are replaced at checkout (survives server restarts
      and terminated backends), the library's JSON codec; ``statement_timeout_ms`` /
      ``lock_timeout_ms`` keyword arguments set the session timeouts. On asyncpg this is a
      free check of the socket plus a one-round-trip ping of connections idle for more than
      ``pool_ping_after`` seconds (default 5; see ``execution/asyncpg/guard.py``) instead of
      SQLAlchemy's ``pool_pre_ping``, which costs three round trips on every checkout. Pass
      ``pool_pre_ping=True`` to get SQLAlchemy's ping back, ``pool_pre_ping=False`` to never
      ping (closed sockets are still caught). Other PostgreSQL drivers keep ``pool_pre_ping``.
      ``fast_path=False`` sends every statement through SQLAlchemy (the asyncpg fast path of
      ``execution/asyncpg`` is otherwise used where it applies; ``CQRS_FAST_PATH=0`` turns it
      off for the whole process).
    - ``tracing=False``: no OpenTelemetry spans for this engine's units of work and stores
      (``CQRS_TRACING=0`` for the whole process; see ``docs/observability.md``).
      Query parameters of the URL reach the driver typed (``?statement_cache_size=0``,
      ``?sslmode=require``, ``?options=-c search_path=app``, psycopg's ``prepare_threshold``);
      one the driver does not accept raises ``ConfigurationError``
      (``dialects/postgresql/url.py``).
    - ``pooler="transaction"``: the engine connects through a transaction-mode pooler
      (PgBouncer, RDS Proxy, Supavisor...): no named prepared statement outlives a transaction
      (asyncpg's statement caches off and unnamed statements; psycopg's
      ``prepare_threshold=None``), the session settings (``statement_timeout_ms``,
      ``lock_timeout_ms``, the URL's ``options=-c name=value``) are applied per transaction
      with ``SET LOCAL`` instead of at connect, single statements then run in a transaction
      of their own, and nothing LISTENs (workers poll; NOTIFY is still sent). See
      ``dialects/postgresql/pooler.py`` and ``docs/deploying.md``. Default ``None``: a direct
      connection (or a session-mode pooler, which needs nothing).
    - SQLite: ``BEGIN IMMEDIATE`` transactions, foreign keys, WAL, busy timeout
      (``lock_timeout_ms`` sets the busy timeout: how long a writer waits for the write lock).
    - Inside an entered ``SQLAlchemyUnitOfWork`` a failing statement raises the library's
      error at once (see :func:`configure_engine`).
    - ``replicas=[url, ...]`` (PostgreSQL streaming standbys; ``ConfigurationError`` on
      SQLite): the result is the primary's engine, a
      :class:`~cqrs_ddd_persistence_sqlalchemy.replicas.RoutedEngine` usable wherever an
      engine is, whose stores send query-side reads outside a unit of work to the replicas
      (engines made with the same keyword arguments, disposed with it). A replica lagging
      more than ``max_replica_lag`` seconds, or down, is skipped (checked every
      ``replica_check_interval`` seconds); after a commit, reads in the same context wait up
      to ``read_your_writes_timeout`` seconds for a replica that replayed it, else use the
      primary. See ``docs/replicas.md``.

    Example::

        engine = create_engine("sqlite+aiosqlite:///./app.db")
        engine = create_engine(
            "postgresql+asyncpg://postgres@127.0.0.1/app", statement_timeout_ms=5000
        )
        engine = create_engine("postgresql+asyncpg://app@pgbouncer:6432/app", pooler="transaction")
    """
    if replicas:
        return _with_replicas(
            url,
            replicas,
            kwargs,
            max_lag=max_replica_lag,
            read_your_writes_timeout=read_your_writes_timeout,
            check_interval=replica_check_interval,
        )
    parsed = make_url(url)
    support = support_for_url(parsed)
    statement_timeout = kwargs.pop("statement_timeout_ms", None)
    lock_timeout = kwargs.pop("lock_timeout_ms", None)
    ping_after = kwargs.pop("pool_ping_after", DEFAULT_PING_AFTER)
    fast_path = bool(kwargs.pop("fast_path", True))
    pooler = check_pooler_mode(kwargs.pop("pooler", None))
    tracing = bool(kwargs.pop("tracing", True))
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", json_loads)
    found: Pooler | None = None
    if pooler is None:
        parsed, kwargs = support.engine_arguments(
            parsed, kwargs, statement_timeout_ms=statement_timeout, lock_timeout_ms=lock_timeout
        )
    else:
        parsed, kwargs, found = support.pooled_engine_arguments(
            parsed,
            kwargs,
            mode=pooler,
            statement_timeout_ms=statement_timeout,
            lock_timeout_ms=lock_timeout,
        )
    kwargs, install_checks = pool_checks(parsed, kwargs, ping_after=ping_after)
    engine = _sa_create_async_engine(parsed, **kwargs)
    install_checks(engine)
    if found is not None:
        install_pooler(engine, found)
    if not fast_path:
        set_fast_path(engine, False)
    if not tracing:
        set_tracing(engine, False)
    support.configure_engine(engine, lock_timeout_ms=lock_timeout)
    return configure_engine(engine)


def _with_replicas(
    url: str | URL,
    replicas: Sequence[str | URL],
    kwargs: dict[str, Any],
    *,
    max_lag: float,
    read_your_writes_timeout: float,
    check_interval: float,
) -> AsyncEngine:
    from cqrs_ddd_persistence_sqlalchemy.replicas.engine import RoutedEngine
    from cqrs_ddd_persistence_sqlalchemy.replicas.registry import attach
    from cqrs_ddd_persistence_sqlalchemy.replicas.routing import ReplicaSet

    if isinstance(replicas, str | URL):
        raise ConfigurationError("replicas= takes a list of URLs, got one URL: put it in a list")
    support = support_for_url(make_url(url))
    if support.replication is None:
        raise ConfigurationError(
            f"replicas= needs PostgreSQL streaming replication; {support.name} has no "
            "replicas: remove replicas="
        )
    primary = RoutedEngine(create_engine(url, **kwargs).sync_engine)
    made = [create_engine(replica_url, **kwargs) for replica_url in replicas]
    # Nothing has connected yet: an error below leaves nothing to close.
    primary.replicas = ReplicaSet(
        primary,
        made,
        max_lag=max_lag,
        read_your_writes_timeout=read_your_writes_timeout,
        check_interval=check_interval,
        owned=True,
    )
    attach(primary.sync_engine, primary.replicas)
    return primary


def configure_engine(engine: AsyncEngine) -> AsyncEngine:
    """Apply dialect set-up to an engine the application created itself.

    Also makes statements that fail inside an entered ``SQLAlchemyUnitOfWork`` raise the
    library's error (``UniqueViolationError``, ``ConnectionLostError``...) chained to the
    driver's, where they fail: ``uow.session.execute(...)`` included. Outside a unit of work,
    SQLAlchemy's own exceptions are left as they are (migrations, the application's own use of
    the engine). Without this set-up the error is translated when it leaves the unit of work.
    """
    dialect_for(engine).configure_engine(engine, lock_timeout_ms=None)
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "handle_error", _translate_in_unit_of_work):
        event.listen(sync_engine, "handle_error", _translate_in_unit_of_work)
    return engine


def _translate_in_unit_of_work(context: ExceptionContext) -> BaseException | None:
    # A pre-ping failure must stay SQLAlchemy's: the pool reads it to replace the connection.
    # Only wrapped driver errors are translated (not a bind processor's error, nor a library
    # error raised in one, which the stores translate themselves).
    if context.is_pre_ping or context.sqlalchemy_exception is None or current_uow() is None:
        return None
    return database_error(context.sqlalchemy_exception)
