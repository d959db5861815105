"""``CQRS_REPLICA_URLS``: the CLI's engines route query-side reads to read replicas."""

from __future__ import annotations

import pytest

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    ENV_REPLICAS,
    CliError,
    _replica_urls,
    open_engine,
)
from cqrs_ddd_persistence_sqlalchemy.replicas import RoutedEngine, replicas_of


async def test_replicas_get_the_same_session_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        ENV_REPLICAS, "postgresql://app@replica-1/app postgresql://app@replica-2/app"
    )
    engine = open_engine("postgresql://app@primary/app", schema="sales")
    try:
        assert isinstance(engine, RoutedEngine)
        replica_set = replicas_of(engine)
        assert replica_set is not None
        urls = [r.engine.url for r in replica_set.replicas]
        assert [u.host for u in urls] == ["replica-1", "replica-2"]
        assert all(u.get_driver_name() == "asyncpg" for u in urls)
    finally:
        await engine.dispose()
    # What create_engine is given for them (it moves these parameters to the driver).
    for url in _replica_urls("sales"):
        assert 'search_path="sales"' in str(url.query["options"])
        assert url.query["connect_timeout"] == "10"


@pytest.mark.parametrize(
    ("replicas", "message"),
    [("sqlite:///replica.db", "no read replicas"), ("::not-a-url::", "invalid database URL")],
)
def test_bad_replica_urls_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, replicas: str, message: str
) -> None:
    monkeypatch.setenv(ENV_REPLICAS, replicas)
    with pytest.raises(CliError, match=message):
        open_engine("postgresql://app@primary/app")


async def test_without_the_variable_the_engine_has_no_replicas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_REPLICAS, raising=False)
    engine = open_engine("postgresql://app@primary/app")
    try:
        assert replicas_of(engine) is None
    finally:
        await engine.dispose()
