"""Every command of ``cqrs-ddd-sqla`` in-process (typer's CliRunner): help and one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from cqrs_ddd_persistence_sqlalchemy.cli import app
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import CliError, normalize_url

runner = CliRunner()

# Commands that never touch a database, or that create what they need.
NO_CONNECTION = {("schema", "sql")}
CREATES_TABLES = {("schema", "create"), ("schema", "check"), ("demo",)}


def leaf_commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)

    def walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        # typer >= 0.25 vendors click: duck-type groups by their ``commands`` mapping.
        commands = getattr(cmd, "commands", None)
        if isinstance(commands, dict):
            for name, sub in sorted(commands.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path

    return list(walk(root, ()))


COMMANDS = leaf_commands()

# Arguments a command needs besides the database options.
DEMO = "cqrs_ddd_persistence_sqlalchemy.cli.demo"
DEMO_PROJECTION = f"{DEMO}.read_model:order_summaries"
EXTRA_ARGS: dict[tuple[str, ...], list[str]] = {
    ("outbox", "requeue"): ["--all"],
    ("projections", "run"): ["--once", "-p", DEMO_PROJECTION],
    ("projections", "rebuild"): ["-p", DEMO_PROJECTION],
    ("jobs", "worker"): [
        "--once",
        "-j",
        "cqrs_ddd_persistence_sqlalchemy.cli.demo.domain:SendInvoice",
    ],
    ("sagas", "recover"): [
        "--once",
        "-o",
        f"{DEMO}.domain:recovery_orchestrators",
    ],
}


def args_for(command: tuple[str, ...], url: str) -> list[str]:
    return [*command, *EXTRA_ARGS.get(command, []), "--database-url", url]


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def test_cli_has_the_schema_commands() -> None:
    assert {("schema", "sql"), ("schema", "create"), ("schema", "check")} <= set(COMMANDS)


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "root")
def test_cli_help(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command:
        assert "--database-url" in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_cli_wrong_url_is_one_line(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, args_for(command, "mysql://nobody@nowhere/x"))
    assert result.exit_code == 1, result.output
    assert "unsupported database 'mysql'" in _one_error_line(result.output)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in NO_CONNECTION], ids=" ".join)
def test_cli_dead_server_is_one_line(command: tuple[str, ...]) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
    result = runner.invoke(app, args_for(command, url))
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert "ConnectionLostError" in line or "cannot reach" in line


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c not in NO_CONNECTION | CREATES_TABLES], ids=" ".join
)
def test_cli_missing_table_is_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, args_for(command, url))
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert "MissingSchemaError" in line and "schema create" in line


def test_cli_url_from_environment(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'env.db'}"
    result = runner.invoke(app, ["schema", "create"], env={"CQRS_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()


def test_cli_no_url_is_one_line() -> None:
    result = runner.invoke(app, ["schema", "check"], env={"CQRS_DATABASE_URL": ""})
    assert result.exit_code == 1
    assert "no database URL" in _one_error_line(result.output)


def test_cli_schema_option_is_postgres_only(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["schema", "create", "-d", url, "--schema", "s"])
    assert result.exit_code == 1
    assert "PostgreSQL only" in _one_error_line(result.output)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./a.db", "sqlite+aiosqlite:///./a.db"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_cli_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["", "not a url", "mysql://x/y"])
def test_cli_normalize_url_rejects(bad: str) -> None:
    with pytest.raises(CliError):
        normalize_url(bad)


def test_cli_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("cqrs-ddd-sqla ")


def test_cli_demo_restores_logger_levels() -> None:
    import logging

    saga_logger = logging.getLogger("cqrs_ddd_advanced_core.sagas")
    before = saga_logger.level
    runner.invoke(app, ["demo", "-d", "postgresql+asyncpg://postgres@127.0.0.1:1/x"])
    assert saga_logger.level == before


def test_cli_projections_run_refuses_a_renewal_slower_than_the_lease(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lease.db'}"
    assert runner.invoke(app, ["schema", "create", "-d", url]).exit_code == 0
    lease = ["--lease-duration", "5", "--lease-renew", "5"]
    result = runner.invoke(app, [*args_for(("projections", "run"), url), *lease])
    assert result.exit_code == 1, result.output
    assert "shorter than the lease duration" in _one_error_line(result.output)
