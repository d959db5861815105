"""PostgreSQL behind a transaction-mode pooler (PgBouncer, RDS Proxy, Supavisor).

A transaction-mode pooler hands a client a server connection for one transaction only; the
next transaction (or statement outside one) may run on another server connection, shared
with other clients. So:

- **no named prepared statement may outlive a transaction**: asyncpg gets
  ``statement_cache_size=0`` (its ``fetch``/``execute`` then use the unnamed statement, which
  asyncpg re-parses in the same message as the execution: safe even outside a transaction),
  SQLAlchemy's asyncpg dialect ``prepared_statement_cache_size=0`` and unnamed statements
  (``prepared_statement_name_func`` returning ``""``: its ``prepare()`` otherwise names them
  ``__asyncpg_stmt_N__``, which collides between clients sharing a server connection);
  psycopg 3 gets ``prepare_threshold=None`` (never prepares);
- **no session state**: server settings given at connect (``statement_timeout_ms``,
  ``lock_timeout_ms``, the URL's ``options=-c name=value``, the CLI's ``--schema``) would be
  startup parameters, which PgBouncer refuses (``unsupported startup parameter``) and which
  would anyway only hold on one server connection. They are applied per transaction instead,
  with ``set_config(name, value, true)`` (``SET LOCAL``) right after ``BEGIN``; single
  statements then run in a transaction of their own (``pooling.py``). Only the parameters
  poolers pass through at startup stay there (``application_name``, ``client_encoding``,
  ``DateStyle``, ``TimeZone``, ``standard_conforming_strings``);
- **no LISTEN** (the dialect returns no listener: workers poll); NOTIFY is still sent.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import URL

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql import engine as pg_engine
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.url import options_settings
from cqrs_ddd_persistence_sqlalchemy.pooling import Pooler

__all__ = ["pooled_engine_arguments", "transaction_settings_sql"]

#: Startup parameters PgBouncer (and the other poolers) accept and track per client.
_STARTUP_PARAMETERS = frozenset(
    {"application_name", "client_encoding", "datestyle", "timezone", "standard_conforming_strings"}
)
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _unnamed_statement() -> str:
    # asyncpg's prepare(name="") uses the unnamed statement and, with its statement cache off,
    # re-parses it at execution: nothing named is left on the server connection.
    return ""


def pooled_engine_arguments(
    url: URL,
    kwargs: dict[str, Any],
    *,
    mode: str,
    statement_timeout_ms: int | None,
    lock_timeout_ms: int | None,
) -> tuple[URL, dict[str, Any], Pooler]:
    """The engine arguments of ``url`` behind a ``mode`` pooler, and the :class:`Pooler` to
    install once the engine exists (``execution.resolve.install_pooler``): driver settings
    without named prepared statements, and every session setting moved into the
    per-transaction ones (with the statement that applies them after ``BEGIN``)."""
    url, kwargs = pg_engine.engine_arguments(
        url, kwargs, statement_timeout_ms=None, lock_timeout_ms=None
    )
    connect_args = dict(kwargs.get("connect_args") or {})
    settings: dict[str, str] = {}
    driver = url.get_driver_name()
    if driver == "asyncpg":
        for name in ("statement_cache_size", "prepared_statement_cache_size"):
            given = connect_args.get(name, url.query.get(name))
            if given not in (None, 0, "0"):
                raise ConfigurationError(
                    f"{name}={given} caches named prepared statements, which do not survive "
                    f"a {mode}-mode pooler; leave it out with pooler={mode!r}"
                )
        url = url.difference_update_query(["prepared_statement_cache_size"])
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args.setdefault("prepared_statement_name_func", _unnamed_statement)
        startup: dict[str, str] = {}
        for name, value in (connect_args.pop("server_settings", None) or {}).items():
            target = startup if name.lower() in _STARTUP_PARAMETERS else settings
            target[name] = str(value)
        if startup:
            connect_args["server_settings"] = startup
    elif driver in {"psycopg", "psycopg_async"}:
        given = connect_args.get("prepare_threshold", "absent")
        if given not in ("absent", None):
            raise ConfigurationError(
                f"prepare_threshold={given} prepares named statements, which do not survive "
                f"a {mode}-mode pooler; leave it out with pooler={mode!r}"
            )
        connect_args["prepare_threshold"] = None
        for options in (url.query.get("options"), connect_args.pop("options", None)):
            if isinstance(options, str):
                settings.update(options_settings(options))
        url = url.difference_update_query(["options"])
    else:
        raise ConfigurationError(
            f"pooler={mode!r} supports the asyncpg and psycopg drivers, not {driver!r}"
        )
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = str(int(statement_timeout_ms))
    if lock_timeout_ms is not None:
        settings["lock_timeout"] = str(int(lock_timeout_ms))
    for name in settings:
        if not _SETTING_NAME.fullmatch(name):
            raise ConfigurationError(f"invalid server setting name {name!r}")
    kwargs["connect_args"] = connect_args
    pairs = tuple(settings.items())
    return url, kwargs, Pooler(mode, pairs, transaction_settings_sql(pairs) if pairs else None)


def transaction_settings_sql(settings: tuple[tuple[str, str], ...]) -> str:
    """One statement setting ``settings`` for the current transaction only."""

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    calls = ", ".join(
        f"pg_catalog.set_config({literal(name)}, {literal(value)}, true)"
        for name, value in settings
    )
    return f"SELECT {calls}"
