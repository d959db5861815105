"""Query parameters of a PostgreSQL URL, delivered to the driver in the form it accepts.

SQLAlchemy hands every query parameter of a URL to the driver's ``connect()`` as a *string*
keyword argument; its dialects only read ``host``/``port`` (several hosts) and, for asyncpg,
``prepared_statement_cache_size``. So ``?statement_cache_size=0`` reaches asyncpg as ``"0"``
and fails inside it with a ``TypeError``, and a misspelt parameter fails the same way.
:func:`driver_connect_args` moves what the driver needs typed into ``connect_args`` and
refuses an unknown parameter with one :class:`~cqrs_ddd_core.errors.ConfigurationError`.

asyncpg (``postgresql+asyncpg://``) accepts:

- its ``connect()`` options: ``timeout``, ``command_timeout`` (seconds), ``statement_cache_size``,
  ``max_cached_statement_lifetime``, ``max_cacheable_statement_size`` (integers), ``ssl`` (an
  SSL mode or true/false), ``direct_tls`` (true/false), ``passfile``, ``target_session_attrs``,
  ``krbsrvname``, ``gsslib`` and, on asyncpg versions that have them, ``service``/``servicefile``;
- libpq's names for the same things, as in a ``psql`` URL: ``connect_timeout``, ``sslmode``;
  ``application_name``; ``options`` (``-c name=value`` pairs become server settings: the way to
  set ``search_path``, ``statement_timeout``...); the TLS files ``sslrootcert``, ``sslcert``,
  ``sslkey``, ``sslcrl``, ``sslpassword`` and ``ssl_min_protocol_version``,
  ``ssl_max_protocol_version``, ``sslnegotiation``, which asyncpg reads from a DSN (they are
  passed to it as one);
- SQLAlchemy's own ``host``, ``port``, ``prepared_statement_cache_size`` (left in the URL).

psycopg 3 (``postgresql+psycopg://``) takes every libpq connection parameter as it is (libpq
checks the values); only ``prepare_threshold`` (an integer, or ``none``) is converted.

Keyword arguments given in ``connect_args`` win over the URL's; ``server_settings`` merge.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import URL

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["driver_connect_args", "options_settings"]

#: Read by SQLAlchemy's PostgreSQL dialects themselves: they stay in the URL.
_SQLALCHEMY_PARAMS = frozenset({"host", "port"})
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class _Invalid(ValueError):
    """A value that does not fit its parameter (the message says what would)."""


def _boolean(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _Invalid("expected true or false")


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _Invalid("expected a whole number") from None
    if number < 0:
        raise _Invalid("expected a number >= 0")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _Invalid("expected a number of seconds") from None
    if not number > 0:
        raise _Invalid("expected a number of seconds > 0")
    return number


def _ssl(value: str) -> str | bool:
    if value.lower() in _TRUE | _FALSE:
        return _boolean(value)
    if value not in _SSL_MODES:
        raise _Invalid(f"expected one of {', '.join(_SSL_MODES)}, true, false")
    return value


def _text(value: str) -> str:
    return value


#: asyncpg ``connect()`` keyword arguments and the conversion of their URL text.
_ASYNCPG_ARGS: dict[str, Callable[[str], Any]] = {
    "timeout": _seconds,
    "command_timeout": _seconds,
    "statement_cache_size": _count,
    "max_cached_statement_lifetime": _count,
    "max_cacheable_statement_size": _count,
    "ssl": _ssl,
    "direct_tls": _boolean,
    "passfile": _text,
    "service": _text,
    "servicefile": _text,
    "target_session_attrs": _text,
    "krbsrvname": _text,
    "gsslib": _text,
}
#: libpq names of asyncpg ``connect()`` arguments.
_ASYNCPG_ALIASES = {"connect_timeout": "timeout", "sslmode": "ssl"}
#: libpq TLS parameters asyncpg reads from a DSN only.
_ASYNCPG_DSN_PARAMS = frozenset(
    {
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "sslnegotiation",
    }
)


def driver_connect_args(
    url: URL, connect_args: Mapping[str, Any] | None = None
) -> tuple[URL, dict[str, Any]]:
    """``url`` without the parameters moved into the returned ``connect_args``.

    Args:
        url: a ``postgresql+<driver>://`` URL; other drivers' URLs come back unchanged.
        connect_args: the caller's own ``connect_args`` (they win over the URL's).

    Raises:
        ConfigurationError: a parameter the driver does not accept, a value of the wrong
            type, or a parameter given twice.

    Example::

        url, args = driver_connect_args(make_url("postgresql+asyncpg://h/db?command_timeout=5"))
        assert args == {"command_timeout": 5.0} and not url.query
    """
    driver = url.get_driver_name()
    explicit = dict(connect_args or {})
    if driver == "asyncpg":
        moved, consumed = _asyncpg(url)
    elif driver in {"psycopg", "psycopg_async"}:
        moved, consumed = _psycopg(url)
    else:
        return url, explicit
    merged = {**moved, **explicit}
    if "server_settings" in moved and "server_settings" in explicit:
        merged["server_settings"] = {**moved["server_settings"], **explicit["server_settings"]}
    return url.difference_update_query(consumed), merged


def _single(url: URL, name: str) -> str:
    value = url.query[name]
    if not isinstance(value, str):
        raise ConfigurationError(f"database URL parameter {name!r} is given more than once")
    return value


def _convert(name: str, convert: Callable[[str], Any], value: str) -> Any:
    try:
        return convert(value)
    except _Invalid as exc:
        raise ConfigurationError(f"database URL parameter {name}={value!r}: {exc}") from None


def _unknown(
    url: URL, name: str, accepted: set[str], summary: str | None = None
) -> ConfigurationError:
    close = difflib.get_close_matches(name, sorted(accepted), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigurationError(
        f"database URL parameter {name!r} is not accepted by {url.get_driver_name()}{hint}; "
        f"accepted: {summary or ', '.join(sorted(accepted))}"
    )


def _asyncpg_arguments() -> dict[str, Callable[[str], Any]]:
    """The arguments of the table the installed asyncpg's ``connect()`` has."""
    try:
        import asyncpg
    except ImportError:  # SQLAlchemy reports the missing driver itself
        return dict(_ASYNCPG_ARGS)
    parameters = inspect.signature(asyncpg.connect).parameters
    return {name: convert for name, convert in _ASYNCPG_ARGS.items() if name in parameters}


def _asyncpg(url: URL) -> tuple[dict[str, Any], list[str]]:
    arguments = _asyncpg_arguments()
    own = {"prepared_statement_cache_size"}  # SQLAlchemy's asyncpg dialect converts it
    accepted = (
        set(arguments)
        | set(_ASYNCPG_ALIASES)
        | _ASYNCPG_DSN_PARAMS
        | {"application_name", "options"}
        | _SQLALCHEMY_PARAMS
        | own
    )
    moved: dict[str, Any] = {}
    given_as: dict[str, str] = {}  # connect() argument -> the URL parameter that set it
    settings: dict[str, str] = {}
    dsn: dict[str, str] = {}
    consumed: list[str] = []
    for name in url.query:
        if name in _SQLALCHEMY_PARAMS or name in own:
            continue
        if name not in accepted:
            raise _unknown(url, name, accepted)
        value = _single(url, name)
        consumed.append(name)
        target = _ASYNCPG_ALIASES.get(name, name)
        if target in arguments:
            if target in given_as:
                raise ConfigurationError(
                    f"database URL parameters {given_as[target]!r} and {name!r} mean the same; "
                    "keep one"
                )
            given_as[target] = name
            moved[target] = _convert(name, arguments[target], value)
        elif name in _ASYNCPG_DSN_PARAMS:
            dsn[name] = value
        elif name == "application_name":
            settings[name] = value
        else:  # options
            settings.update(options_settings(value))
    if settings:
        moved["server_settings"] = settings
    if dsn:
        moved["dsn"] = "postgresql://?" + urlencode(dsn)
    return moved, consumed


def _psycopg(url: URL) -> tuple[dict[str, Any], list[str]]:
    try:
        from psycopg import pq
    except ImportError:  # SQLAlchemy reports the missing driver itself
        return {}, []
    # libpq's own list of connection parameters, from the libpq psycopg is linked with
    conninfo = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    accepted = conninfo | {"prepare_threshold"}
    moved: dict[str, Any] = {}
    for name in url.query:
        if name not in accepted:
            raise _unknown(url, name, accepted, "libpq's connection parameters, prepare_threshold")
        if name in _SQLALCHEMY_PARAMS:
            continue
        value = _single(url, name)
        if name == "prepare_threshold":
            moved[name] = None if value.lower() == "none" else _convert(name, _count, value)
    return moved, list(moved)


def options_settings(options: str) -> dict[str, str]:
    """Server settings of libpq's ``options`` (``-c name=value``, ``--name=value``).

    Words are separated by spaces; a backslash makes the next character part of the word.
    """
    words: list[str] = []
    word: list[str] = []
    chars = iter(options)
    for char in chars:
        if char == "\\":
            word.append(next(chars, ""))
        elif char.isspace():
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(char)
    if word:
        words.append("".join(word))
    settings: dict[str, str] = {}
    items = iter(words)
    for switch in items:
        if switch == "-c":
            item = next(items, "")
        elif switch.startswith(("-c", "--")):
            item = switch[2:]
        else:
            item = ""
        name, equals, value = item.partition("=")
        if not name or not equals:
            raise ConfigurationError(
                f"database URL parameter options={options!r}: expected -c name=value pairs"
            )
        settings[name.replace("-", "_")] = value
    return settings
