"""``cqrs-ddd-sqla dashboard`` in a real browser: headless Chromium against the CLI process.

A database with known content (outbox messages pending and dead — one dead letter's error is
hostile HTML —, jobs of two types in every state and one stalled, events and a projection
checkpoint behind them, sagas of two types, and on PostgreSQL an open transaction holding the
event store's horizon back) is served by the dashboard started as users start it. The test
reads the numbers on the page, requeues a dead letter with ``--allow-actions`` and is refused
without it, and takes a screenshot (with ``CQRS_REFRESH_SCREENSHOT=1``, the PostgreSQL run
writes it to the docs' ``docs/images/dashboard.png``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, select
from tests.acceptance.conftest import CLI, ROOT, cli_env
from tests.acceptance.webdriver import Browser, browser_session, chromium_or_skip
from tests.conftest import pg_dsn

from cqrs_ddd_advanced_core.jobs import BackgroundJob
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionPositionStore
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.sagas import sagas_table
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table

SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"
_REFRESH = "CQRS_REFRESH_SCREENSHOT"
HOSTILE = (
    "<script>document.title='pwned'</script>"
    '<img src=x onerror="document.title=\'pwned\'"><b id="injected">boom</b>'
)
BROKER_DOWN = "ConnectionRefusedError: broker at amqp://rabbit:5672 is down"
HOLDER_APP = "<i>billing-batch</i>"


class DashEmailJob(BackgroundJob):
    to: str = ""


class DashIndexJob(BackgroundJob):
    pass


async def _seed(url: str) -> dict[str, Any]:
    """Known content; returns the ids the test looks up."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        outbox = SQLAlchemyOutboxStorage(engine)
        await outbox.save_messages(
            [OutboxMessage(event_type="OrderPlaced", payload={"n": i}) for i in range(5)]
        )
        hostile, broker = await outbox.claim(2)
        await outbox.fail([hostile], error=HOSTILE, retry=False)
        await outbox.fail([broker], error=BROKER_DOWN, retry=False)

        jobs = SQLAlchemyBackgroundJobRepository(BackgroundJob, engine)
        for i in range(3):
            await jobs.enqueue(DashEmailJob(to=f"u{i}@example.org"))
        for _ in range(2):
            await jobs.enqueue(DashIndexJob())
        email = DashEmailJob.job_type()
        index = DashIndexJob.job_type()
        (done,) = await jobs.claim(1, job_types=[email])
        await jobs.complete(done, result=None)
        (dead,) = await jobs.claim(1, job_types=[index])
        await jobs.fail(dead, "index corrupt", retry=False)
        await jobs.claim(1, job_types=[email], lease_seconds=0.01)  # its worker "dies"
        await asyncio.sleep(0.05)

        store = SQLAlchemyEventStore(engine)
        for i in range(6):
            await store.append(StoredEvent(event_type="OrderPlaced", aggregate_id=f"o{i}"))
        await SQLAlchemyProjectionPositionStore(engine).save_position("orders.summary", 2)

        now = datetime.now(UTC)
        rows = [
            ("OrderSaga", "RUNNING"),
            ("OrderSaga", "RUNNING"),
            ("OrderSaga", "COMPLETED"),
            ("OrderSaga", "FAILED"),
            ("RefundSaga", "COMPENSATED"),
        ]
        async with engine.begin() as conn:
            await conn.execute(
                insert(sagas_table),
                [
                    {
                        "saga_id": f"s{i}",
                        "saga_type": saga_type,
                        "correlation_id": f"c{i}",
                        "saga_status": status,
                        "version": 1,
                        "state": {},
                        "updated_at": now,
                    }
                    for i, (saga_type, status) in enumerate(rows)
                ],
            )
        return {
            "hostile_id": hostile.message_id,
            "broker_id": broker.message_id,
            "email": email,
            "index": index,
        }
    finally:
        await engine.dispose()


async def _append_one(url: str) -> None:
    engine = create_engine(url)
    try:
        await SQLAlchemyEventStore(engine).append(
            StoredEvent(event_type="OrderPlaced", aggregate_id="late")
        )
    finally:
        await engine.dispose()


async def _outbox_status(url: str, message_id: str) -> str:
    engine = create_engine(url)
    try:
        t = outbox_table
        async with engine.connect() as conn:
            found = await conn.execute(select(t.c.status).where(t.c.message_id == message_id))
            return str(found.scalar_one())
    finally:
        await engine.dispose()


@contextmanager
def dashboard(url: str, tmp_path: Path, *args: str) -> Iterator[str]:
    """The CLI's dashboard on a free port; yields its address; ended by its pid (SIGTERM)."""
    log = tmp_path / f"dashboard-{len(list(tmp_path.glob('dashboard-*')))}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(CLI), "dashboard", "-d", url, "--port", "0", "--refresh", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
            env=cli_env(COLUMNS="300"),
        )
    try:
        address = None
        deadline = time.monotonic() + 60
        while address is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"dashboard on (http://\S+/)", log.read_text())
            address = found.group(1) if found else None
            time.sleep(0.05)
        assert address, f"dashboard did not start (exit {proc.poll()}): {log.read_text()}"
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output


def _post(url: str, form: dict[str, str]) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@asynccontextmanager
async def _horizon_holder(dialect_name: str, url: str) -> AsyncIterator[int | None]:
    """On PostgreSQL, an open transaction with a transaction id (it holds the horizon)."""
    if dialect_name != "postgresql":
        yield None
        return
    conn = await asyncpg.connect(pg_dsn(url), server_settings={"application_name": HOLDER_APP})
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.fetchval("SELECT pg_current_xact_id()")
        yield int(await conn.fetchval("SELECT pg_backend_pid()"))
        await tx.rollback()
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
    return "postgresql", str(request.getfixturevalue("pg_database"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium_or_skip()
    with browser_session(tmp_path / "chromium-profile") as session:
        yield session


def _cell(browser: Browser, css: str) -> str:
    return browser.text(css).strip()


def _check_numbers(browser: Browser, ids: dict[str, Any], head: int = 6, held: int = 0) -> None:
    # Outbox: 5 messages, 2 dead-lettered -> 3 pending (due), none leased or published.
    assert _cell(browser, "#outbox-pending") == "3"
    assert _cell(browser, "#outbox-leased") == "0"
    assert _cell(browser, "#outbox-published") == "0"
    assert _cell(browser, "#outbox-dead") == "2"
    rows = browser.find_all("#dead-letters tr[data-message-id]")
    assert len(rows) == 2
    # Jobs: email 3 (1 completed, 2 pending of which 1 stalled), index 2 (1 dead, 1 pending).
    assert _cell(browser, "#jobs-pending") == "3"
    assert _cell(browser, "#jobs-completed") == "1"
    assert _cell(browser, "#jobs-dead") == "1"
    assert _cell(browser, "#jobs-running") == "0"
    assert _cell(browser, "#jobs-stalled") == "1"
    email, index = ids["email"], ids["index"]
    assert _cell(browser, f'td[data-type="{email}"][data-status="pending"]') == "2"
    assert _cell(browser, f'td[data-type="{email}"][data-status="completed"]') == "1"
    assert _cell(browser, f'td[data-type="{index}"][data-status="dead"]') == "1"
    assert _cell(browser, f'td[data-type="{index}"][data-status="pending"]') == "1"
    # Projections: checkpoint 2 of the log.
    assert _cell(browser, "#log-head") == str(head)
    row = '#projections-table tr[data-projection="orders.summary"]'
    assert _cell(browser, f"{row} td.position") == "2"
    assert _cell(browser, f"{row} td.behind") == f"≤ {head - 2}"
    # Sagas per status, all types and per type.
    assert _cell(browser, "#sagas-running") == "2"
    assert _cell(browser, "#sagas-completed") == "1"
    assert _cell(browser, "#sagas-failed") == "1"
    assert _cell(browser, "#sagas-compensated") == "1"
    assert _cell(browser, 'td[data-saga-type="RefundSaga"][data-status="compensated"]') == "1"
    # Event store: on PostgreSQL, events committed after the holder began are above the horizon.
    assert _cell(browser, "#es-head") == str(head)
    assert _cell(browser, "#es-events") == str(head)
    assert _cell(browser, "#es-held") == str(held)


def _check_escaped(browser: Browser, ids: dict[str, Any]) -> None:
    error = browser.text(f'tr[data-message-id="{ids["hostile_id"]}"] pre.error')
    assert error == HOSTILE  # shown as text, every character
    assert browser.find_all("#injected") == []
    assert browser.title == "cqrs-ddd operations"


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after 30 s")
        time.sleep(0.05)


def _wait_for_samples(browser: Browser, address: str, count: int) -> None:
    """Reload until the charts hold ``count`` samples (sampled every 0.2 s; generous limit)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        browser.get(address)
        samples = browser.find("#chart-outbox_pending").attribute("data-samples")
        if int(samples or 0) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} samples after 60 s")


def test_dashboard_in_chromium(database: tuple[str, str], browser: Browser, tmp_path: Path) -> None:
    dialect_name, url = database
    ids = asyncio.run(_seed(url))

    # Read-only (the default): the numbers, escaped errors, no button, and a refused action.
    with dashboard(url, tmp_path) as address:
        browser.get(address)
        assert _cell(browser, "#mode") == "read-only"
        _check_numbers(browser, ids)
        _check_escaped(browser, ids)
        assert browser.find_all("form.action") == []
        status, body = _post(address + "outbox/requeue", {"all": "1"})
        assert status == 403 and "--allow-actions" in body
    assert asyncio.run(_outbox_status(url, ids["broker_id"])) == "dead"

    async def with_actions() -> None:
        async with _horizon_holder(dialect_name, url) as holder_pid:
            if holder_pid is not None:
                await _append_one(url)  # committed, but above the horizon the holder keeps
            with dashboard(url, tmp_path, "--allow-actions", "--sample-every", "0.2") as address:
                await asyncio.to_thread(_actions, browser, address, ids, holder_pid)
                # The docs' picture is refreshed on request only: a test run leaves the
                # checkout as it found it.
                refresh = dialect_name == "postgresql" and os.environ.get(_REFRESH) == "1"
                shot = SCREENSHOT if refresh else tmp_path / "dashboard.png"
                await asyncio.to_thread(browser.screenshot, shot)
                assert shot.read_bytes().startswith(b"\x89PNG")

    asyncio.run(with_actions())
    assert asyncio.run(_outbox_status(url, ids["broker_id"])) == "pending"
    assert asyncio.run(_outbox_status(url, ids["hostile_id"])) == "dead"


def _actions(browser: Browser, address: str, ids: dict[str, Any], holder_pid: int | None) -> None:
    browser.get(address)
    assert _cell(browser, "#mode") == "actions enabled"
    if holder_pid is None:
        _check_numbers(browser, ids)
    else:
        _check_numbers(browser, ids, head=7, held=1)
    _check_escaped(browser, ids)
    if holder_pid is None:
        assert browser.find_all("#es-holder") == []
    else:
        assert _cell(browser, "#es-holder-pid") == str(holder_pid)
        assert _cell(browser, "#es-holder-application") == HOLDER_APP
        assert "pg_backend_pid" in _cell(browser, "#es-holder-query")

    # A form without the page's token is refused even with the flag.
    status, _ = _post(address + "outbox/requeue", {"all": "1", "token": "forged"})
    assert status == 403

    browser.find(f'tr[data-message-id="{ids["broker_id"]}"] form.action button').click()
    _wait_for(lambda: browser.url.endswith("/?requeued=1"), "the requeue's redirect")
    assert _cell(browser, "#notice") == "requeued 1 message(s)"
    assert _cell(browser, "#outbox-dead") == "1"
    assert _cell(browser, "#outbox-pending") == "4"
    assert [
        r.attribute("data-message-id")
        for r in browser.find_all("#dead-letters tr[data-message-id]")
    ] == [ids["hostile_id"]]
    _wait_for_samples(browser, address, 6)


def test_dashboard_errors_are_one_line(tmp_path: Path) -> None:
    """No library table, or a port already taken: one line on stderr, exit code 1."""
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    asyncio.run(_create_one_table(empty))
    for args, expected in [
        (["-d", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"], "MissingSchemaError"),
        (["-d", empty, "--host", "203.0.113.1"], "cannot listen on 203.0.113.1:8765"),
    ]:
        done = subprocess.run(
            [str(CLI), "dashboard", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=cli_env(COLUMNS="300"),
            check=False,
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert lines[0].startswith("error: ") and expected in lines[0]


async def _create_one_table(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(outbox_table.create)
    finally:
        await engine.dispose()
