"""A real PgBouncer in transaction mode in front of the test server (Debian's ``pgbouncer``).

:func:`running_pgbouncer` writes a configuration in a temporary directory and starts
``pgbouncer`` on a free local port: ``pool_mode = transaction``, trust authentication, every
database of the server (``* =``), at most :data:`SERVER_CONNECTIONS` server connections per
database and user — fewer than the client connections the tests open, so clients share server
connections as they do in production. PgBouncer refuses to run as root: under root it runs as
``postgres`` (``setpriv``, which execs: the pid started is PgBouncer's). It is ended by that
pid (SIGTERM: immediate shutdown) and waited for.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

__all__ = ["SERVER_CONNECTIONS", "Bouncer", "pgbouncer_binary", "running_pgbouncer"]

#: Server connections per (database, user): small, to force sharing between clients.
SERVER_CONNECTIONS = 4


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None


@dataclass(frozen=True)
class Bouncer:
    port: int
    pid: int
    log: Path

    def url(self, server_url: str) -> str:
        """``server_url`` (a SQLAlchemy URL of the test server) through this PgBouncer."""
        return (
            make_url(server_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_pgbouncer(server_url: str, *, pool_size: int = SERVER_CONNECTIONS) -> Iterator[Bouncer]:
    """A PgBouncer in transaction mode in front of ``server_url``'s server, for the block.

    Raises ``RuntimeError`` (with its log) when it cannot start.
    """
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    server = make_url(server_url)
    user = server.username or "postgres"
    workdir = Path(tempfile.mkdtemp(prefix="cqrs-pgbouncer-"))
    command = [binary, str(workdir / "pgbouncer.ini")]
    as_user: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        as_user = pwd.getpwnam("postgres")
        command = [
            "setpriv",
            f"--reuid={as_user.pw_uid}",
            f"--regid={as_user.pw_gid}",
            "--init-groups",
            "--",
            *command,
        ]
    port = _free_port()
    log = workdir / "pgbouncer.log"
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {workdir / 'users.txt'}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 1000\n"
        f"default_pool_size = {pool_size}\n"
        "reserve_pool_size = 0\n"
        "server_lifetime = 3600\n"
        f"logfile = {log}\n"
        "log_connections = 0\n"
        "log_disconnections = 0\n"
    )
    if as_user is not None:
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, as_user.pw_uid, as_user.pw_gid)
    # stderr to a file, never a pipe: PgBouncer logs to stderr as well as to its logfile (a
    # stats line a minute, every client error), and once nobody reads a pipe its 64 KiB fill
    # up and PgBouncer blocks on the write — every connection through it hangs.
    stderr_path = workdir / "stderr.log"
    with stderr_path.open("wb") as stderr_file:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr_file)
    bouncer = Bouncer(port=port, pid=proc.pid, log=log)
    try:
        deadline = time.monotonic() + 15
        while not _listening(port):
            if proc.poll() is not None:
                stderr = stderr_path.read_text(errors="replace")
                raise RuntimeError(
                    f"pgbouncer exited with {proc.returncode}: {stderr}{bouncer.log_text()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not listen within 15 s: {bouncer.log_text()}")
            time.sleep(0.05)
        yield bouncer
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
