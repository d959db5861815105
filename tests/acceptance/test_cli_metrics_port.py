"""``--metrics-port`` of the long-running services: ``/metrics`` in Prometheus text format.

Each service runs as users run it (the installed entry point, a subprocess) on a SQLite database
of known content; the page it serves parses as Prometheus text and its gauges are that content.
The process is ended by its pid (SIGTERM) and waited for.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.acceptance.conftest import CLI, cli_env

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.observability import METRICS

DEMO = "cqrs_ddd_persistence_sqlalchemy.cli.demo"

SERVICES = {
    "outbox relay": ["outbox", "relay", "--poll-interval", "0.1"],
    "jobs worker": ["jobs", "worker", "--poll-interval", "0.1", "-j", f"{DEMO}.domain:SendInvoice"],
    "projections run": ["projections", "run", "-p", f"{DEMO}.read_model:order_summaries"],
    "sagas recover": [
        "sagas",
        "recover",
        "--poll-interval",
        "0.1",
        "-o",
        f"{DEMO}.domain:recovery_orchestrators",
    ],
}


class Archive(BackgroundJob):
    """A job type no service here runs: it stays pending."""

    async def execute(self, ctx: JobContext) -> Any:
        return None


async def _known_content(url: str) -> None:
    """Two dead outbox messages, nothing pending, one pending Archive job."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        outbox = SQLAlchemyOutboxStorage(engine)
        await outbox.save_messages([OutboxMessage(event_type="Refused") for _ in range(2)])
        await outbox.fail(await outbox.claim(10), error="refused", retry=False)
        await SQLAlchemyBackgroundJobRepository(Archive, engine).enqueue(Archive())
    finally:
        await engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, labels without the scope's) -> value`` of a Prometheus text page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_"))
            )
            found[(sample.name, labels)] = sample.value
    return found


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_serves_metrics_of_the_database(tmp_path: Path, service: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    asyncio.run(_known_content(url))
    port = _free_port()
    proc = subprocess.Popen(
        [str(CLI), *SERVICES[service], "-d", url, "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=cli_env(),
    )
    try:
        assert proc.stderr is not None
        lines = []
        while not lines or "metrics on" not in lines[-1]:
            line = proc.stderr.readline()
            assert line, f"the service ended: {''.join(lines)}"
            lines.append(line)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            page = response.read().decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    samples = _samples(page)
    assert samples[("cqrs_outbox_dead", ())] == 2
    assert samples[("cqrs_outbox_pending", ())] == 0
    assert samples[("cqrs_outbox_oldest_age_seconds", ())] == 0
    archive = Archive.job_type()
    assert samples[("cqrs_jobs", (("job_type", archive), ("status", "pending")))] == 1
    assert samples[("cqrs_eventstore_horizon_lag", ())] == 0  # SQLite: never held back
    # Every gauge of the documented table is on the page under the name the docs give it.
    names = {name for name, _ in samples}
    gauges = {m.prometheus_name for m in METRICS if m.instrument == "gauge"}
    assert gauges - names <= {
        "cqrs_projection_lag",
        "cqrs_projection_checkpoint_age_seconds",
        "cqrs_sagas",
    }  # no checkpoint, no saga in this database


def test_metrics_port_without_a_number_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "outbox", "relay", "-d", "sqlite+aiosqlite:///x.db", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=cli_env(),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
