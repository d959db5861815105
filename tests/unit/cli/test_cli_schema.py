"""``schema sql|create|check`` on SQLite, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cqrs_ddd_persistence_sqlalchemy import metadata
from cqrs_ddd_persistence_sqlalchemy.cli import app
from cqrs_ddd_persistence_sqlalchemy.cli.schema import create_ddl

runner = CliRunner()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_cli_schema_sql_has_every_table(dialect: str) -> None:
    result = runner.invoke(app, ["schema", "sql", "--dialect", dialect])
    assert result.exit_code == 0, result.output
    assert result.output == create_ddl(metadata, dialect) + "\n"
    for table in metadata.tables:
        assert f"CREATE TABLE {table} (" in result.output


def test_cli_schema_sql_dialect_from_url() -> None:
    result = runner.invoke(app, ["schema", "sql", "-d", "sqlite:///x.db"])
    assert result.exit_code == 0, result.output
    assert result.output == create_ddl(metadata, "sqlite") + "\n"


def test_cli_schema_create_then_check(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    first = runner.invoke(app, ["schema", "create", "-d", url])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["schema", "create", "-d", url])
    assert second.exit_code == 0 and "already exist" in second.output
    check = runner.invoke(app, ["schema", "check", "-d", url])
    assert check.exit_code == 0, check.output
    assert check.output.startswith("ok:")


def test_cli_schema_check_reports_differences(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, ["schema", "check", "-d", url])
    if not metadata.tables:
        pytest.skip("no library tables registered yet")
    assert result.exit_code == 1
    assert "table missing" in result.output


def test_cli_health_reports_components_without_tables(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    assert runner.invoke(app, ["schema", "create", "-d", url]).exit_code == 0
    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("DROP TABLE cqrs_background_jobs")
    result = runner.invoke(app, ["health", "-d", url, "--json"])
    assert result.exit_code == 0, result.output
    checks = {(c["component"], c["check"]): c for c in json.loads(result.output)}
    assert checks[("jobs", "tables")]["status"] == "warn"
    assert checks[("outbox", "dead letters")]["status"] == "ok"
    assert checks[("event store", "commit-safe horizon")]["status"] == "ok"


def test_cli_rejects_a_malformed_schema_name() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
    result = runner.invoke(app, ["outbox", "stats", "-d", url, "--schema", 'x"; drop'])
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid schema name")


def test_cli_projection_lag_is_exact_with_the_projection(tmp_path: Path) -> None:
    """Without -p the lag counts every event type (an upper bound); with -p only handled ones."""
    import asyncio

    from cqrs_ddd_core.ports.event_store import StoredEvent
    from cqrs_ddd_persistence_sqlalchemy import create_engine
    from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionPositionStore
    from cqrs_ddd_persistence_sqlalchemy.cli.projections import projection_lags
    from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    assert runner.invoke(app, ["schema", "create", "-d", url]).exit_code == 0

    async def scenario() -> list[tuple[int, bool]]:
        engine = create_engine(url)
        try:
            store = SQLAlchemyEventStore(engine)
            for i, kind in enumerate(["demo.OrderPlaced", "Other", "Other", "demo.OrderPaid"]):
                await store.append(StoredEvent(event_type=kind, aggregate_id=f"a-{i}"))
            await SQLAlchemyProjectionPositionStore(engine).save_position("p", 1)
            rough = await projection_lags(engine)
            exact = await projection_lags(engine, {"p": frozenset({"demo.OrderPaid"})})
            return [(lag.behind, lag.exact) for lag in (*rough, *exact)]
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == [(3, False), (1, True)]
