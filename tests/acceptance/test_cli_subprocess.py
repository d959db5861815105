"""``cqrs-ddd-sqla`` as users run it: the installed entry point, in subprocesses.

The demo runs once on SQLite (module fixture); every other command then runs against the
database it left behind. PostgreSQL gets the demo and a health check in a schema of their own.
Errors (wrong URL, dead server, missing table) must be one line on stderr, no traceback.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tests.acceptance.conftest import CLI, ROOT, RunCli, cli_env
from tests.conftest import PG_URL, pg_dsn, require_postgres

DEMO = "cqrs_ddd_persistence_sqlalchemy.cli.demo"


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """The demo, run once with its defaults (./cqrs-ddd-demo.db), in a fresh directory."""
    cwd = tmp_path_factory.mktemp("demo")
    (cwd / "cqrs-ddd-demo.db").write_text("not a database: the demo must recreate the file")
    done = subprocess.run(
        [str(CLI), "demo"], capture_output=True, text=True, timeout=120, cwd=cwd, env=cli_env()
    )
    out = _ok(done)
    return f"sqlite+aiosqlite:///{cwd / 'cqrs-ddd-demo.db'}", cwd, out


@pytest.fixture
def demo_db(demo_run: tuple[str, Path, str]) -> tuple[str, Path]:
    return demo_run[0], demo_run[1]


def test_cli_demo_on_sqlite_default_file(demo_run: tuple[str, Path, str]) -> None:
    _, cwd, out = demo_run
    assert "All 8 steps passed" in out
    for step in (
        "Aggregates saved",
        "compensates",
        "event store",
        "Outbox relayed",
        "Projection built",
        "Background jobs",
        "scheduled command",
        "event-sourced aggregate with snapshots",
    ):
        assert step in out
    assert (cwd / "cqrs-ddd-demo.db").read_bytes().startswith(b"SQLite format 3")


# Every operational command against the demo's database: (arguments, expected output).
COMMANDS: list[tuple[list[str], str]] = [
    (["schema", "sql", "--dialect", "sqlite"], "CREATE TABLE cqrs_events"),
    (["schema", "create"], "already exist"),
    (["schema", "check"], "ok:"),
    (["outbox", "stats"], "published"),
    (["outbox", "dead-letters"], "no dead letters"),
    (["outbox", "requeue", "--all"], "requeued 0 message(s)"),
    (["outbox", "relay", "--once"], "claimed 0"),
    (["jobs", "stats"], "completed"),
    (["jobs", "worker", "--once", "-j", f"{DEMO}.domain:SendInvoice"], "processed 0 job(s)"),
    (["projections", "status", "-p", f"{DEMO}.read_model:order_summaries"], "demo.order_summaries"),
    (["projections", "run", "--once", "-p", f"{DEMO}.read_model:order_summaries"], "applied 0"),
    (["projections", "rebuild", "-p", f"{DEMO}.read_model:order_summaries"], "rebuilt from 7"),
    (["sagas", "recover", "--once", "-o", f"{DEMO}.domain:recovery_orchestrators"], "recovered 0"),
    (["health", "-p", f"{DEMO}.read_model:order_summaries"], "0 event(s) behind"),
]


@pytest.mark.parametrize(
    ("args", "expected"), [pytest.param(a, e, id=" ".join(a[:2])) for a, e in COMMANDS]
)
def test_cli_command_on_demo_database(
    demo_db: tuple[str, Path], args: list[str], expected: str
) -> None:
    url, cwd = demo_db
    done = subprocess.run(
        [str(CLI), *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=cli_env(COLUMNS="200"),
    )
    assert expected in _ok(done) + done.stderr


# Long-running services: (arguments, what they say on start, what they print when stopped).
SERVICES: list[tuple[list[str], str, str]] = [
    (["outbox", "relay", "--poll-interval", "0.1"], "relaying", "claimed 0, published 0"),
    (
        ["jobs", "worker", "--poll-interval", "0.1", "-j", f"{DEMO}.domain:SendInvoice"],
        "running SendInvoice jobs",
        "processed 0 job(s)",
    ),
    (
        [
            "sagas",
            "recover",
            "--poll-interval",
            "0.1",
            "-o",
            f"{DEMO}.domain:recovery_orchestrators",
        ],
        "recovering sagas",
        "recovered 0 saga(s)",
    ),
]


@pytest.mark.parametrize(
    ("args", "started", "stopped"), [pytest.param(*s, id=" ".join(s[0][:2])) for s in SERVICES]
)
def test_cli_service_stops_gracefully_on_sigterm(
    demo_db: tuple[str, Path], args: list[str], started: str, stopped: str
) -> None:
    url, cwd = demo_db
    proc = subprocess.Popen(
        [str(CLI), *args, "-d", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=cli_env(),
    )
    try:
        assert proc.stderr is not None
        assert started in proc.stderr.readline()  # started and polling
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert stopped in out and "Traceback" not in err


def test_cli_projections_run_stops_gracefully_on_sigterm(demo_db: tuple[str, Path]) -> None:
    """``projections run`` serves its runners as workers: SIGTERM stops them (``stop()``)."""
    url, cwd = demo_db
    proc = subprocess.Popen(
        [
            *(str(CLI), "projections", "run", "-p", f"{DEMO}.read_model:order_summaries"),
            *("-d", url, "--lease-duration", "120", "--lease-renew", "10"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=cli_env(),
    )
    try:
        assert proc.stderr is not None
        assert "running demo.order_summaries" in proc.stderr.readline()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    # it gave its projection's lease back on the way out (not 120 s later)
    with closing(sqlite3.connect(str(make_url(url).database))) as conn:
        [(expired,)] = conn.execute(
            "SELECT expires_at <= strftime('%Y-%m-%d %H:%M:%f', 'now') FROM cqrs_leases "
            "WHERE name = 'projection:demo.order_summaries'"
        ).fetchall()
    assert expired == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://nobody@nowhere/x", "unsupported database"),
        ("postgresql+asyncpg://postgres@127.0.0.1:1/x", "ConnectionLostError"),
        ("sqlite+aiosqlite:///./empty.db", "MissingSchemaError"),
    ],
    ids=["wrong-url", "dead-server", "missing-table"],
)
def test_cli_errors_are_one_line(run_cli: RunCli, url: str, expected: str) -> None:
    assert expected in _one_line_error(run_cli("outbox", "stats", "--database-url", url))


def test_cli_missing_url_is_one_line(run_cli: RunCli) -> None:
    assert "no database URL" in _one_line_error(run_cli("health"))


async def test_cli_demo_on_postgres(run_cli: RunCli) -> None:
    require_postgres()
    schema = f"demo_{os.getpid()}_{time.monotonic_ns() % 10**8}"
    url = PG_URL
    try:
        out = _ok(run_cli("demo", "--database-url", url, "--schema", schema))
        assert "All 8 steps passed" in out and url.split("://")[0] in out
        # A generous --fail-after: the horizon check sees every open transaction of the
        # cluster, including other tests'.
        health = _ok(
            run_cli("health", "-d", url, "--schema", schema, "--fail-after", "86400", COLUMNS="200")
        )
        assert "demo.order_summaries" in health
    finally:
        conn = await asyncpg.connect(pg_dsn())
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def test_cli_scripts_demo_wrapper(tmp_path: Path) -> None:
    """``./scripts/demo`` passes its arguments through to ``cqrs-ddd-sqla demo``."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'wrapped.db'}"
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--database-url", url],
        capture_output=True,
        text=True,
        timeout=180,
        env=cli_env(CQRS_SKIP_SYNC="1"),
    )
    assert "All 8 steps passed" in _ok(done)
