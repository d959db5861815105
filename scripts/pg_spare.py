"""Throw-away PostgreSQL clusters for parallel test workers (used by ``scripts/stacks.py``).

Why a cluster per pytest-xdist worker and not a schema: the event store's global reads only
return rows below ``pg_snapshot_xmin(pg_current_snapshot())``, a horizon of the whole cluster.
A test that holds a transaction open on purpose (or a slow one) holds back every other test's
readers on the same cluster, so two workers on one cluster make the event-store, projection and
subscription tests time out. Each worker gets a cluster of its own; the first one is the server
of ``CQRS_TEST_POSTGRES_URL``.

Needs root and Debian's ``pg_createcluster`` tooling (CI has both); :func:`unavailable` says why
not otherwise, and the caller runs the tests in one process instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

PREFIX = "cqrsstacks"
TOOLS = ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster", "pg_lsclusters", "psql")


def unavailable() -> str | None:
    """Why spare clusters cannot be made here (None when they can)."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "pg_createcluster needs root"
    if _version() is None:
        return "no PostgreSQL server installed under /usr/lib/postgresql"
    return None


@contextlib.contextmanager
def spare_clusters(count: int) -> Iterator[list[str]]:
    """``count`` started clusters with a ``test`` database holding PostGIS; yields their
    ``host:port`` and drops them afterwards."""
    _drop_stale()
    version = _version()
    assert version is not None
    made: list[str] = []
    hosts: list[str] = []
    try:
        for i in range(count):
            name = f"{PREFIX}{os.getpid()}x{i}"
            made.append(name)
            port = _free_port()
            _run("pg_createcluster", version, name, "-p", str(port), "--start-conf=manual",
                 "--", "--auth=trust", "--no-sync")  # fmt: skip
            conf = Path(f"/etc/postgresql/{version}/{name}/conf.d/stacks.conf")
            conf.parent.mkdir(parents=True, exist_ok=True)
            # a scratch server: no durability needed, nothing survives the run
            conf.write_text(
                "listen_addresses = '127.0.0.1'\nmax_connections = 100\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
            _run("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start")
            psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qAt",
                    "-v", "ON_ERROR_STOP=1"]  # fmt: skip
            _run(*psql, "-d", "postgres", "-c", "CREATE DATABASE test")
            _run(*psql, "-d", "test", "-c", "CREATE EXTENSION IF NOT EXISTS postgis")
            hosts.append(f"127.0.0.1:{port}")
        yield hosts
    finally:
        for name in made:
            _drop(version, name)


def _version() -> str | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p.name for p in root.glob("*") if (p / "bin" / "postgres").exists()),
        key=lambda v: [int(x) for x in v.split(".") if x.isdigit()],
    )
    return versions[-1] if versions else None


def _clusters() -> list[list[str]]:
    """[version, name] of every cluster."""
    out = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout
    return [line.split()[:2] for line in out.splitlines() if line.strip()]


def _drop_stale() -> None:
    """Drop spare clusters of runs that no longer exist (killed before they cleaned up)."""
    for version, name in _clusters():
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("x")[0]
        if pid.isdigit() and not _alive(int(pid)):
            _drop(version, name)


def _drop(version: str, name: str) -> None:
    subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, check=False)
    # pg_dropcluster keeps a configuration directory holding files it did not write
    shutil.rmtree(f"/etc/postgresql/{version}/{name}", ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
