"""``create_engine(url, pooler="transaction")``: the driver arguments and per-transaction
settings it builds, and what it refuses. No database here: tests/integration/topology and
tests/reliability/test_rel_pooler_relays.py run them through a real PgBouncer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import open_engine
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.pooler import pooled_engine_arguments
from cqrs_ddd_persistence_sqlalchemy.pooling import pooler_of


def _pooled(url: str, **kwargs: Any) -> tuple[str, dict[str, Any], Any]:
    timeouts = {
        "statement_timeout_ms": kwargs.pop("statement_timeout_ms", None),
        "lock_timeout_ms": kwargs.pop("lock_timeout_ms", None),
    }
    rest, out, pooler = pooled_engine_arguments(
        make_url(url), kwargs, mode="transaction", **timeouts
    )
    return rest.render_as_string(hide_password=False), out["connect_args"], pooler


def test_asyncpg_gets_no_named_statements_and_settings_per_transaction() -> None:
    url, args, pooler = _pooled(
        "postgresql+asyncpg://u@db/app?options=-c%20search_path%3Dapp,public"
        "&application_name=relay",
        statement_timeout_ms=5000,
        lock_timeout_ms=250,
    )
    assert url == "postgresql+asyncpg://u@db/app"
    assert args["statement_cache_size"] == 0
    assert args["prepared_statement_cache_size"] == 0
    assert args["prepared_statement_name_func"]() == ""  # asyncpg's unnamed statement
    assert args["server_settings"] == {"application_name": "relay"}  # a pooler accepts it
    assert dict(pooler.settings) == {
        "search_path": "app,public",
        "statement_timeout": "5000",
        "lock_timeout": "250",
    }
    assert pooler.begin_sql.startswith("SELECT pg_catalog.set_config('search_path'")
    assert "true)" in pooler.begin_sql


def test_psycopg_never_prepares_and_its_options_become_per_transaction_settings() -> None:
    url, args, pooler = _pooled(
        "postgresql+psycopg://u@db/app?options=-c%20search_path%3Dapp",
        connect_args={"options": "-c lock_timeout=1s"},
    )
    assert url == "postgresql+psycopg://u@db/app"
    assert args == {"prepare_threshold": None}
    assert dict(pooler.settings) == {"search_path": "app", "lock_timeout": "1s"}


def test_without_settings_nothing_runs_at_begin() -> None:
    _, _, pooler = _pooled("postgresql+asyncpg://u@db/app")
    assert pooler.settings == () and pooler.begin_sql is None


def test_a_value_is_quoted_as_a_literal() -> None:
    _, _, pooler = _pooled(
        "postgresql+psycopg://u@db/app", connect_args={"options": "-c application_name=it's"}
    )
    assert "'it''s'" in pooler.begin_sql


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("postgresql+asyncpg://u@db/app?statement_cache_size=100", {}, "statement_cache_size"),
        (
            "postgresql+asyncpg://u@db/app",
            {"connect_args": {"prepared_statement_cache_size": 10}},
            "prepared_statement_cache_size",
        ),
        ("postgresql+psycopg://u@db/app?prepare_threshold=5", {}, "prepare_threshold"),
        ("postgresql+asyncpg://u@db/app", {"pooler": "session"}, "not a pooler mode"),
        ("sqlite+aiosqlite:///:memory:", {}, "SQLite"),
    ],
)
def test_refused_with_one_clear_error(url: str, kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("pooler", "transaction")
    with pytest.raises(ConfigurationError, match=message):
        create_engine(url, **kwargs)


def test_the_engine_and_the_cli_engine_know_their_pooler() -> None:
    engine = create_engine("postgresql+asyncpg://u@db/app", pooler="transaction")
    direct = create_engine("postgresql+asyncpg://u@db/app")
    cli = open_engine("postgresql://u@db/app?statement_cache_size=0", "app", "transaction")
    try:
        assert pooler_of(engine) is not None and pooler_of(direct) is None
        found = pooler_of(cli)
        assert found is not None
        # the CLI's --schema is a per-transaction setting, not a startup parameter
        assert dict(found.settings) == {"search_path": '"app",public'}
    finally:
        for e in (engine, direct, cli):
            asyncio.run(e.dispose())
