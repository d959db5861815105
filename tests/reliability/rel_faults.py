"""Fault injection for the reliability suite.

- :func:`tagged_engine` / :func:`app_name`: library engines whose connections carry a unique
  ``application_name``, so a test can find exactly its own backends in ``pg_stat_activity``
  (other test processes share the server).
- :func:`terminate_backends`: ``pg_terminate_backend`` on those backends (optionally only the ones
  inside a transaction or running a statement).
- :class:`DedicatedCluster`: a throw-away PostgreSQL cluster on its own port that a test owns and
  may restart without disturbing anybody else on the shared server (created when missing, dropped
  afterwards).
- :func:`kill_at_random`: SIGKILL a subprocess after a random delay.
- :data:`SOAK` / :func:`soak`: bigger iteration counts under ``CQRS_SOAK=1``.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import PG_URL, pg_connect_args, pg_dsn

from cqrs_ddd_persistence_sqlalchemy import create_engine

SOAK = os.environ.get("CQRS_SOAK") == "1"
T = TypeVar("T", int, float)


def soak(ci: T, soak_value: T) -> T:
    """``soak_value`` under ``CQRS_SOAK=1``, else ``ci``."""
    return soak_value if SOAK else ci


def app_name(tag: str = "rel") -> str:
    """A unique ``application_name`` (PostgreSQL truncates at 63 bytes)."""
    return f"{tag}-{uuid.uuid4().hex[:12]}"[:63]


def tagged_engine(schema: str, name: str, *, url: str = PG_URL, **kwargs: Any) -> AsyncEngine:
    """A library engine on ``schema`` whose connections report ``application_name = name``."""
    connect_args = pg_connect_args(
        url,
        kwargs.pop("connect_args", None),
        search_path=f"{schema}, public",
        application_name=name,
    )
    return create_engine(url, connect_args=connect_args, **kwargs)


async def admin_connect(dsn: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(dsn or pg_dsn(), timeout=10)


async def backends(name: str, *, dsn: str | None = None) -> list[dict[str, Any]]:
    """``pid``, ``state`` and ``query`` of every backend whose application_name is ``name``."""
    conn = await admin_connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid, state, query, xact_start FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def terminate_backends(
    name: str, *, only: str | None = None, query_prefix: str = "", dsn: str | None = None
) -> int:
    """Terminate the backends named ``name``; ``only``: ``"xact"`` (inside a transaction),
    ``"active"`` (running a statement) or None (all); ``query_prefix``: only those whose last
    query starts so (e.g. ``"LISTEN"``). Returns how many were terminated."""
    where = "application_name = $1 AND pid <> pg_backend_pid() AND starts_with(query, $2)"
    if only == "xact":
        where += " AND xact_start IS NOT NULL"
    elif only == "active":
        where += " AND state = 'active'"
    conn = await admin_connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE {where}",
            name,
            query_prefix,
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r["ok"])


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], *, within: float = 10, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it is true; ``TimeoutError`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def wait_for_backend(
    name: str, *, state: str | None = None, query_contains: str | None = None, within: float = 10
) -> None:
    """Wait until a backend named ``name`` (in ``state``, running ``query_contains``) exists."""

    async def seen() -> bool:
        for b in await backends(name):
            if state is not None and b["state"] != state:
                continue
            if query_contains is not None and query_contains not in (b["query"] or ""):
                continue
            return True
        return False

    await wait_for(seen, within=within)


# -- a PostgreSQL cluster of our own ------------------------------------------------------------

CLUSTER_PREFIX = "relcheck"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DedicatedCluster:
    """A PostgreSQL cluster owned by one test (Debian ``pg_createcluster`` tooling).

    Created when missing (trust auth, small settings), started, restarted and finally dropped.
    Restarting it disturbs nobody else: every other test uses the shared cluster on 5432.
    """

    def __init__(
        self, name: str | None = None, port: int | None = None, version: str = "15"
    ) -> None:
        # Unique per test process: several test runs may share this machine at once.
        self.name = name or f"{CLUSTER_PREFIX}{os.getpid()}"
        self.port = port or _free_port()
        self.version = version
        self.created_here = False

    @classmethod
    def drop_stale(cls, version: str = "15") -> None:
        """Drop clusters left behind by test processes that no longer exist (killed runs)."""
        out = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[0] != version or not parts[1].startswith(CLUSTER_PREFIX):
                continue
            pid = parts[1][len(CLUSTER_PREFIX) :]
            if pid.isdigit() and not _alive(int(pid)):
                subprocess.run(
                    ["pg_dropcluster", "--stop", version, parts[1]],
                    capture_output=True, check=False, timeout=120,
                )  # fmt: skip
        for conf in Path(f"/etc/postgresql/{version}").glob(f"{CLUSTER_PREFIX}*"):
            pid = conf.name[len(CLUSTER_PREFIX) :]
            if not (conf / "postgresql.conf").exists() and not (pid.isdigit() and _alive(int(pid))):
                shutil.rmtree(conf, ignore_errors=True)

    @staticmethod
    def available() -> str | None:
        """Why a dedicated cluster cannot be made here (None when it can)."""
        for tool in ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster", "pg_lsclusters"):
            if shutil.which(tool) is None:
                return f"{tool} not installed"
        if os.geteuid() != 0:
            return "creating a cluster needs root (pg_createcluster)"
        return None

    @property
    def url(self) -> str:
        # the driver under test (CQRS_TEST_POSTGRES_URL's), on this cluster
        return (
            make_url(PG_URL)
            .set(username="postgres", password=None, host="127.0.0.1", port=self.port)
            .set(database="postgres")
            .render_as_string(hide_password=False)
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120)

    def exists(self) -> bool:
        out = self._run("pg_lsclusters", "--no-header", check=False).stdout
        return any(
            line.split()[:2] == [self.version, self.name] for line in out.splitlines() if line
        )

    def create(self) -> None:
        if self.exists():
            # A leftover of an interrupted run: start from scratch so its state cannot leak in.
            self._run("pg_dropcluster", "--stop", self.version, self.name, check=False)
        self._run(
            "pg_createcluster", self.version, self.name, "-p", str(self.port),
            "--start-conf=manual",
            "--", "--auth=trust", "--no-sync",
        )  # fmt: skip
        self.created_here = True
        conf = Path(f"/etc/postgresql/{self.version}/{self.name}/conf.d/reliability.conf")
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            "listen_addresses = '127.0.0.1'\n"
            "max_connections = 60\n"
            "shared_buffers = 32MB\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
        )

    def ctl(self, action: str) -> None:
        self._run(
            "pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action,
            "--", "-w", "-t", "60",
        )  # fmt: skip

    def start(self) -> None:
        self.ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._run(
            "pg_ctlcluster", "--skip-systemctl-redirect", "-m", mode, self.version, self.name,
            "stop",
        )  # fmt: skip

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop (fast: every backend terminated), stay down ``down_for`` seconds, start."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    async def wait_ready(self, within: float = 30) -> None:
        async def ready() -> bool:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return False
            await conn.close()
            return True

        await wait_for(ready, within=within, interval=0.1)

    def drop(self) -> None:
        if self.exists():
            self._run("pg_dropcluster", "--stop", self.version, self.name, check=False)
        # pg_dropcluster keeps a configuration directory holding files it did not write
        shutil.rmtree(f"/etc/postgresql/{self.version}/{self.name}", ignore_errors=True)


# -- processes -------------------------------------------------------------------------------


def kill_at_random(
    proc: subprocess.Popen[Any], rng: random.Random, low: float, high: float
) -> float:
    """SIGKILL ``proc`` after a random delay in ``[low, high]`` seconds (returns the delay)."""
    delay = rng.uniform(low, high)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return delay
