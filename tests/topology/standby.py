"""A real streaming standby of the test server, for the read-replica tests.

:func:`make_standby` copies the server at ``CQRS_TEST_POSTGRES_URL`` with ``pg_basebackup -R``
(the server's own binaries, a permanent replication slot so that no WAL it needs is recycled)
into a temporary directory owned by ``postgres``, and starts it as ``postgres`` on a free local
port. Every process is ended by its id: the server by :meth:`Standby.stop` (fast shutdown, then
waited for), and :meth:`Standby.remove` also drops the slot and the directory.

Replication connections from 127.0.0.1 must be allowed: a fresh Debian cluster allows them
(``host replication all 127.0.0.1/32 …``), CI's main cluster may not (``host all all …`` does
not cover replication). When they are refused, the server's ``pg_hba.conf`` gets one line at its
top for the duration (:class:`ReplicationAccess`), removed and reloaded afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

HBA_LINE = "host replication all 127.0.0.1/32 trust  # cqrs-ddd standby tests (temporary)"
#: Serialises the edits of ``pg_hba.conf`` by the processes of one run (pytest-xdist workers).
HBA_LOCK = Path(tempfile.gettempdir()) / "cqrs-standby-hba.lock"
#: Settings a hot standby must have at least as high as its primary.
_AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


class StandbyError(RuntimeError):
    """The standby could not be made (the tests that need it fail with this)."""


class PortTaken(StandbyError):
    """Another server has the port picked for the standby (free ports are picked by other
    processes too): pick another."""


def _run(command: list[str], *, timeout: float = 300) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise StandbyError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` user (we are root on CI and here)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def admin_dsn(url: str | URL) -> str:
    """A libpq connection string for ``url`` (any SQLAlchemy driver)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(dsn: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@contextlib.contextmanager
def _hba_lock() -> Iterator[None]:
    with HBA_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class ReplicationAccess:
    """Allow replication connections from 127.0.0.1 on the primary while the tests run.

    Each process adds a line of its own (tagged) and removes only that one: a worker that
    finishes first does not take the access away from another one's standby.
    """

    dsn: str
    added: Path | None = None
    line: str = field(default_factory=lambda: f"{HBA_LINE} {uuid.uuid4().hex[:12]}")

    def ensure(self, probe: list[str]) -> None:
        if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
            return
        [(hba,)] = _admin(self.dsn, "SHOW hba_file")
        path = Path(str(hba))
        try:
            with _hba_lock():
                path.write_text(f"{self.line}\n{path.read_text()}")
        except OSError as exc:
            raise StandbyError(
                f"replication connections from 127.0.0.1 are refused and {path} cannot be "
                f"changed ({exc}): add '{HBA_LINE}' and reload"
            ) from exc
        self.added = path
        _admin(self.dsn, "SELECT pg_reload_conf()")
        deadline = time.monotonic() + 20
        while subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode:
            if time.monotonic() > deadline:
                raise StandbyError("replication connections still refused after pg_hba.conf")
            time.sleep(0.2)

    def restore(self) -> None:
        path, self.added = self.added, None
        if path is None:
            return
        with _hba_lock():
            kept = [
                line
                for line in path.read_text().splitlines(keepends=True)
                if line.rstrip("\n") != self.line
            ]
            path.write_text("".join(kept))
        _admin(self.dsn, "SELECT pg_reload_conf()")


@dataclass
class Standby:
    """One running (or stopped) hot standby of the test server."""

    primary_url: str
    directory: Path
    bin_dir: Path
    port: int
    slot: str
    access: ReplicationAccess
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "standby.log"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, driver: str | None = None) -> str:
        """The primary's URL pointed at the standby (``driver``: ``asyncpg`` / ``psycopg``)."""
        parsed = make_url(self.primary_url).set(host="127.0.0.1", port=self.port)
        if driver is not None:
            parsed = parsed.set(drivername=f"postgresql+{driver}")
        return parsed.render_as_string(hide_password=False)

    # -- life cycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        """Start the server as ``postgres`` and wait until it accepts connections."""
        if self.process is not None:
            return
        user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                **(user if os.geteuid() == 0 else {}),  # type: ignore[arg-type]
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                log = self.log.read_bytes()[start:].decode(errors="replace")
                if "could not bind" in log or "already in use" in log:
                    raise PortTaken(f"port {self.port} is taken")
                raise StandbyError(f"the standby exited ({code}): {log[-2000:]}")
            try:
                [(directory,)] = _admin(admin_dsn(self.url()), "SHOW data_directory")
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise StandbyError(
                        f"the standby did not start in {timeout}s: {self.log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
                continue
            if Path(str(directory)) != self.data:  # another server answers on our port
                self.stop()
                raise PortTaken(f"port {self.port} is another server's ({directory})")
            return

    def stop(self) -> None:
        """Fast shutdown by pid (SIGINT), waited for; SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def set_delay(self, seconds: float) -> None:
        """``recovery_min_apply_delay``: commits are replayed that long after they were made
        (reloaded with SIGHUP to the server's pid; waits until the server uses it)."""
        millis = int(seconds * 1000)
        (self.data / "delay.conf").write_text(f"recovery_min_apply_delay = '{millis}ms'\n")
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while True:
            [(value,)] = _admin(
                admin_dsn(self.url()),
                "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'",
            )
            if int(str(value)) == millis:
                return
            if time.monotonic() > deadline:
                raise StandbyError(f"recovery_min_apply_delay is {value}, not {millis} ms")
            time.sleep(0.05)

    def wait_replayed(self, timeout: float = 60) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        [(target,)] = _admin(
            admin_dsn(self.primary_url), "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
        )
        deadline = time.monotonic() + timeout
        while True:
            [(replayed,)] = _admin(
                admin_dsn(self.url()), "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
            )
            if replayed is not None and int(str(replayed)) >= int(str(target)):
                return
            if time.monotonic() > deadline:
                raise StandbyError(f"the standby did not replay up to {target} in {timeout}s")
            time.sleep(0.02)

    def remove(self) -> None:
        """Stop the server, drop its slot on the primary, remove its directory and give the
        primary's ``pg_hba.conf`` back."""
        try:
            self.stop()
            drop_slot(self.primary_url, self.slot)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.access.restore()


def drop_slot(primary_url: str, slot: str) -> None:
    """Drop ``slot`` once its sender has let it go (a moment after the standby stopped)."""
    dsn = admin_dsn(primary_url)
    deadline = time.monotonic() + 30
    while True:
        found = _admin(dsn, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'")
        if not found:
            return
        if not found[0][0]:
            _admin(dsn, f"SELECT pg_drop_replication_slot('{slot}')")
            return
        if time.monotonic() > deadline:
            raise StandbyError(f"replication slot {slot} is still in use")
        time.sleep(0.1)


def make_standby(primary_url: str) -> Standby:
    """A running hot standby of ``primary_url`` (see the module docstring)."""
    dsn = admin_dsn(primary_url)
    settings = dict(
        _admin(
            dsn,
            "SELECT name, setting FROM pg_settings WHERE name = ANY(ARRAY["
            + ",".join(f"'{n}'" for n in (*_AT_LEAST_PRIMARY, "wal_level", "server_version_num"))
            + "])",
        )
    )
    if settings["wal_level"] not in ("replica", "logical"):
        raise StandbyError(f"the server's wal_level is {settings['wal_level']}: need replica")
    if int(str(settings["max_wal_senders"])) < 1:
        raise StandbyError("the server has max_wal_senders = 0")
    major = int(str(settings["server_version_num"])) // 10000
    bin_dir = Path(os.environ.get("CQRS_PG_BIN", f"/usr/lib/postgresql/{major}/bin"))
    if not (bin_dir / "pg_basebackup").exists():
        raise StandbyError(f"no pg_basebackup in {bin_dir} (set CQRS_PG_BIN)")
    primary = make_url(primary_url)
    host, port = primary.host or "127.0.0.1", primary.port or 5432
    user = primary.username or "postgres"
    access = ReplicationAccess(dsn)
    probe = _as_postgres(
        [
            str(bin_dir / "psql"),
            f"host={host} port={port} user={user} dbname=replication replication=true "
            "connect_timeout=10",
            "-c",
            "IDENTIFY_SYSTEM",
        ]
    )
    access.ensure(probe)
    directory = Path(tempfile.mkdtemp(prefix="cqrs-standby-"))
    slot = f"cqrs_standby_{uuid.uuid4().hex[:12]}"
    standby = Standby(primary_url, directory, bin_dir, _free_port(), slot, access)
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        directory.chmod(0o700)
        # The slot first, reserving WAL from now: made by pg_basebackup (-C), it is made after
        # the backup began, and a checkpoint in between (another backup's) may remove WAL the
        # standby needs ("requested WAL segment ... has already been removed").
        _admin(dsn, f"SELECT pg_create_physical_replication_slot('{slot}', true)")
        _run(
            _as_postgres(
                [
                    str(bin_dir / "pg_basebackup"),
                    "-h", host, "-p", str(port), "-U", user,
                    "-D", str(standby.data),
                    "-X", "stream", "-S", slot, "-R",
                    "--checkpoint=fast", "--no-password",
                ]
            )
        )  # fmt: skip
        lines = [
            f"port = {standby.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{directory}'",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "wal_receiver_status_interval = 1s",
            "shared_buffers = 32MB",
            "fsync = off",
            *(f"{name} = {settings[name]}" for name in _AT_LEAST_PRIMARY),
            "include_if_exists = 'delay.conf'",
        ]
        # Debian keeps the configuration out of the data directory: the copy has none.
        for name, content in (
            ("postgresql.conf", "\n".join(lines) + "\n"),
            ("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n"),
            ("pg_ident.conf", ""),
        ):
            path = standby.data / name
            path.write_text(content)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        for attempt in range(5):
            try:
                standby.start()
                break
            except PortTaken:
                if attempt == 4:
                    raise
                standby.port = _free_port()
                conf = standby.data / "postgresql.conf"
                conf.write_text(
                    re.sub(r"(?m)^port = \d+$", f"port = {standby.port}", conf.read_text())
                )
    except BaseException:
        standby.remove()
        raise
    return standby
