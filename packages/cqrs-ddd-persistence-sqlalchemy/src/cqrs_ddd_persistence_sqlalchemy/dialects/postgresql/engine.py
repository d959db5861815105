"""PostgreSQL engine set-up: driver arguments from the URL, session timeouts, CLI defaults."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.url import driver_connect_args

__all__ = ["engine_arguments", "with_session_defaults"]


def engine_arguments(
    url: URL,
    kwargs: dict[str, Any],
    *,
    statement_timeout_ms: int | None,
    lock_timeout_ms: int | None,
) -> tuple[URL, dict[str, Any]]:
    """The URL's driver parameters typed into ``connect_args`` (see ``url.py``) and the
    session timeouts set at connect: asyncpg's ``server_settings``, libpq's ``options`` for
    psycopg."""
    kwargs = dict(kwargs)
    url, connect_args = driver_connect_args(url, kwargs.pop("connect_args", None))
    settings: dict[str, str] = {}
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = str(int(statement_timeout_ms))
    if lock_timeout_ms is not None:
        settings["lock_timeout"] = str(int(lock_timeout_ms))
    if settings:
        if url.get_driver_name() == "asyncpg":
            server_settings = {**connect_args.get("server_settings", {}), **settings}
            connect_args = {**connect_args, "server_settings": server_settings}
        else:
            extra = " ".join(f"-c {name}={value}" for name, value in settings.items())
            options = connect_args.get("options")
            connect_args = {**connect_args, "options": f"{options} {extra}" if options else extra}
    if connect_args:
        kwargs["connect_args"] = connect_args
    return url, kwargs


def with_session_defaults(url: URL, *, schema: str | None, connect_timeout: float) -> URL:
    """``url`` with a connect timeout (unless it sets one) and, with ``schema``,
    ``search_path = <schema>, public`` — as libpq URL parameters, which ``create_engine``
    hands to whichever driver the URL names."""
    added: dict[str, str] = {}
    if not {"connect_timeout", "timeout"} & set(url.query):
        added["connect_timeout"] = str(int(connect_timeout))
    options = url.query.get("options")
    if schema and not isinstance(options, tuple):  # given twice: create_engine says so
        search_path = f'-c search_path="{schema}",public'
        added["options"] = f"{options} {search_path}" if options else search_path
    return url.update_query_dict(added) if added else url
