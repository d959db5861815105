"""Acceptance fixtures: the installed ``cqrs-ddd-sqla`` in a subprocess, throw-away databases."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.conftest import PG_URL, _admin, require_postgres

ROOT = Path(__file__).parents[2]
CLI = Path(sys.executable).parent / "cqrs-ddd-sqla"

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_DATABASE")}
    env["PYTHONWARNINGS"] = "error"
    env.update(extra)
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run ``cqrs-ddd-sqla *args`` in a subprocess (cwd: a temporary directory)."""

    def _run(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=cli_env(**env),
            check=False,
        )

    return _run


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """The SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test."""
    require_postgres()
    name = f"acc_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
