"""URL query parameters reach the PostgreSQL driver typed; unknown ones are one clear error.

``driver_connect_args`` is what ``create_engine`` (and so every CLI command) applies to a URL.
No database here: tests/acceptance/test_cli_url_subprocess.py connects with such URLs.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import make_url

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import open_engine
from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.url import driver_connect_args

# psycopg is in the dev dependency group: its parameter list comes from the libpq it links.
ASYNCPG = "postgresql+asyncpg://u@db:5432/app"
PSYCOPG = "postgresql+psycopg://u@db:5432/app"


def _split(url: str, connect_args: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    rest, args = driver_connect_args(make_url(url), connect_args)
    return rest.render_as_string(hide_password=False), args


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("statement_cache_size=0", {"statement_cache_size": 0}),
        ("max_cached_statement_lifetime=30", {"max_cached_statement_lifetime": 30}),
        ("max_cacheable_statement_size=0", {"max_cacheable_statement_size": 0}),
        ("command_timeout=2.5", {"command_timeout": 2.5}),
        ("timeout=3", {"timeout": 3.0}),
        ("connect_timeout=3", {"timeout": 3.0}),  # libpq's name
        ("ssl=require", {"ssl": "require"}),
        ("ssl=true", {"ssl": True}),
        ("ssl=False", {"ssl": False}),
        ("sslmode=verify-full", {"ssl": "verify-full"}),  # libpq's name
        ("direct_tls=on", {"direct_tls": True}),
        ("target_session_attrs=read-write", {"target_session_attrs": "read-write"}),
        ("passfile=/run/pgpass", {"passfile": "/run/pgpass"}),
        ("application_name=relay", {"server_settings": {"application_name": "relay"}}),
        (
            "options=-c%20search_path%3Dapp,public%20--statement-timeout%3D5s",
            {"server_settings": {"search_path": "app,public", "statement_timeout": "5s"}},
        ),
        (
            r"options=-csearch_path%3D%22my\%20app%22",
            {"server_settings": {"search_path": '"my app"'}},
        ),
        (
            "sslrootcert=/ca.pem&sslmode=verify-ca",
            {"ssl": "verify-ca", "dsn": "postgresql://?sslrootcert=%2Fca.pem"},
        ),
    ],
)
def test_cli_url_asyncpg_parameters_become_typed_connect_args(
    query: str, expected: dict[str, Any]
) -> None:
    rest, args = _split(f"{ASYNCPG}?{query}")
    assert args == expected
    assert rest == ASYNCPG  # SQLAlchemy would hand what is left to asyncpg as strings


def test_cli_url_asyncpg_leaves_sqlalchemy_parameters_in_the_url() -> None:
    url = f"{ASYNCPG}?prepared_statement_cache_size=0&host=a:5432&host=b:5432&command_timeout=1"
    rest, args = _split(url)
    assert args == {"command_timeout": 1.0}
    assert make_url(rest).query == {
        "prepared_statement_cache_size": "0",
        "host": ("a:5432", "b:5432"),
    }


def test_cli_url_explicit_connect_args_win_and_server_settings_merge() -> None:
    url = f"{ASYNCPG}?statement_cache_size=0&application_name=url&options=-c%20jit%3Doff"
    explicit = {"statement_cache_size": 50, "server_settings": {"application_name": "code"}}
    _, args = _split(url, explicit)
    assert args == {
        "statement_cache_size": 50,
        "server_settings": {"application_name": "code", "jit": "off"},
    }
    assert explicit == {"statement_cache_size": 50, "server_settings": {"application_name": "code"}}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "statment_cache_size=0",
            "'statment_cache_size' is not accepted by asyncpg (did you mean "
            "'statement_cache_size'?)",
        ),
        ("search_path=app", "'search_path' is not accepted by asyncpg"),
        ("prepare_threshold=0", "'prepare_threshold' is not accepted by asyncpg"),
        ("statement_cache_size=none", "statement_cache_size='none': expected a whole number"),
        ("statement_cache_size=-1", "expected a number >= 0"),
        ("command_timeout=0", "expected a number of seconds > 0"),
        ("timeout=soon", "expected a number of seconds"),
        ("ssl=maybe", "expected one of disable, allow, prefer, require, verify-ca, verify-full"),
        ("direct_tls=perhaps", "expected true or false"),
        ("statement_cache_size=0&statement_cache_size=1", "is given more than once"),
        ("timeout=1&connect_timeout=2", "parameters 'timeout' and 'connect_timeout' mean the same"),
        ("connect_timeout=2&timeout=1", "parameters 'connect_timeout' and 'timeout' mean the same"),
        ("ssl=require&sslmode=disable", "mean the same; keep one"),
        ("options=statement_timeout%3D5", "expected -c name=value pairs"),
        ("options=-c%20jit", "expected -c name=value pairs"),
    ],
)
def test_cli_url_asyncpg_refuses_what_it_cannot_deliver(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _split(f"{ASYNCPG}?{query}")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_cli_url_psycopg_converts_prepare_threshold_and_keeps_libpq_parameters() -> None:
    libpq = "sslmode=require&connect_timeout=5&application_name=relay&options=-c%20jit%3Doff"
    rest, args = _split(f"{PSYCOPG}?prepare_threshold=0&{libpq}")
    assert args == {"prepare_threshold": 0}
    assert make_url(rest).query == make_url(f"{PSYCOPG}?{libpq}").query
    assert _split(f"{PSYCOPG}?prepare_threshold=None")[1] == {"prepare_threshold": None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "statement_cache_size=0",
            "'statement_cache_size' is not accepted by psycopg; accepted: libpq's connection "
            "parameters, prepare_threshold",
        ),
        ("prepare_treshold=0", "(did you mean 'prepare_threshold'?)"),
        ("prepare_threshold=often", "prepare_threshold='often': expected a whole number"),
        ("sslmode=require&sslmode=disable", "is given more than once"),
    ],
)
def test_cli_url_psycopg_refuses_what_it_cannot_deliver(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _split(f"{PSYCOPG}?{query}")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///app.db?timeout=3", "postgresql+pg8000://u@db/app?x=1"]
)
def test_cli_url_other_drivers_are_left_to_sqlalchemy(url: str) -> None:
    assert _split(url, {"a": 1}) == (url, {"a": 1})


def test_cli_url_create_engine_applies_it() -> None:
    """The same function, not a copy: a user's ``create_engine`` refuses the same URL."""
    with pytest.raises(ConfigurationError, match="did you mean 'command_timeout'"):
        create_engine(f"{ASYNCPG}?comand_timeout=1")
    engine = create_engine(f"{ASYNCPG}?statement_cache_size=0", statement_timeout_ms=500)
    assert engine.url.query == {}  # moved into connect_args, not left for SQLAlchemy


def _with_cli_defaults(url: Any, schema: str | None) -> Any:
    return SUPPORTED["postgresql"].with_session_defaults(url, schema=schema, connect_timeout=10)


def test_cli_url_cli_defaults_are_libpq_parameters() -> None:
    url = make_url(f"{ASYNCPG}?options=-c%20jit%3Doff")
    with_schema = _with_cli_defaults(url, "tenant_1")  # what ``open_engine`` adds
    assert with_schema.query == {
        "connect_timeout": "10",
        "options": '-c jit=off -c search_path="tenant_1",public',
    }
    _, args = driver_connect_args(with_schema)
    assert args == {
        "timeout": 10.0,
        "server_settings": {"jit": "off", "search_path": '"tenant_1",public'},
    }
    # the URL's own connect timeout wins over the CLI's default
    assert _with_cli_defaults(make_url(f"{ASYNCPG}?timeout=2"), None).query == {"timeout": "2"}
    assert "connect_timeout" not in open_engine(f"{ASYNCPG}?timeout=2").url.query


def test_cli_url_open_engine_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="statment_cache_size"):
        open_engine("postgresql://u@db/app?statment_cache_size=0")
