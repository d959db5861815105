"""The operations page without a database: hostile text is escaped wherever it lands, the
actions appear only with a token, charts are drawn from samples, requests are bounded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from html.parser import HTMLParser
from http import HTTPStatus

import pytest

from cqrs_ddd_advanced_core.jobs import JobStatus
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.charts import line_chart
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.history import History
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.http import (
    MAX_BODY,
    BadRequest,
    Request,
    Response,
    read_request,
)
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.page import PageOptions, render_page
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.snapshot import (
    EventStoreView,
    JobsView,
    OutboxView,
    ProjectionsView,
    Snapshot,
)
from cqrs_ddd_persistence_sqlalchemy.cli.projections import Lag
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import HorizonHolder, HorizonStatus
from cqrs_ddd_persistence_sqlalchemy.queue import QueueStats

EVIL = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


class Tags(HTMLParser):
    """The start tags of a document, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def _hostile_snapshot() -> Snapshot:
    now = datetime.now(UTC)
    stats = QueueStats(
        pending=3, leased=1, scheduled=1, done=4, dead=1, oldest_due_at=now, lag_seconds=75.0
    )
    dead = OutboxMessage(event_type=EVIL, message_id=EVIL, error=EVIL, retry_count=3)
    return Snapshot(
        taken_at=now,
        where=EVIL,
        outbox=OutboxView(stats, (dead,)),
        jobs=JobsView({JobStatus.DEAD: 2}, {EVIL: {JobStatus.DEAD: 2}}, 1, 900.0),
        projections=ProjectionsView(10, (Lag(EVIL, 4, False, 6, 3.0),)),
        sagas={EVIL: {"RUNNING": 1, EVIL: 2}},
        event_store=EventStoreView(
            10,
            10,
            HorizonStatus(horizon_txid=5, invisible_events=2),
            HorizonHolder(
                pid=42,
                user=EVIL,
                application=EVIL,
                client=EVIL,
                state=EVIL,
                xact_started=now,
                xact_age_s=30.0,
                query=EVIL,
            ),
        ),
        missing=(EVIL,),
    )


@pytest.mark.parametrize("token", [None, "tok"])
def test_hostile_text_is_escaped_everywhere(token: str | None) -> None:
    history = History(window_s=60, every_s=1)
    history.add(_hostile_snapshot())
    history.last_error = EVIL
    html = render_page(_hostile_snapshot(), history, PageOptions(action_token=token), EVIL)
    tags = _tags(html)
    assert not [t for t, _ in tags if t in ("script", "img")]
    assert not [a for _, a in tags if any(k.startswith("on") for k in a)]
    assert "<script>" not in html and "&lt;script&gt;" in html
    # Attribute values come back whole: quotes did not end them.
    assert {a.get("data-message-id") for _, a in tags} >= {EVIL}
    assert {a.get("data-type") for _, a in tags} >= {EVIL}
    forms = [a for t, a in tags if t == "form"]
    assert len(forms) == (2 if token else 0)
    if token:
        assert {a.get("value") for t, a in tags if t == "input"} >= {"tok", EVIL, "1"}


def test_page_numbers_and_grades() -> None:
    html = render_page(_hostile_snapshot(), History(window_s=60, every_s=1), PageOptions())
    tags = {a.get("id"): a for _, a in _tags(html) if a.get("id")}
    assert "outbox-pending" in tags and "jobs-stalled" in tags and "es-holder-pid" in tags
    # pending (due) = pending - leased - scheduled; a 75 s lag warns (60 s), 900 s fails.
    assert 'id="outbox-pending" class="num ">1<' in html
    assert 'id="outbox-oldest" class="num warn">1m 15s<' in html
    assert 'id="jobs-stalled" class="fail">1<' in html
    assert 'http-equiv="refresh" content="10; url=/"' in html
    assert "refresh" not in render_page(
        _hostile_snapshot(), History(window_s=60, every_s=1), PageOptions(refresh_s=0)
    )


def test_chart_spans_the_samples_until_the_window_is_full() -> None:
    empty = line_chart("k", EVIL, "", [], 60)
    assert "no sample yet" in empty and "<script>" not in empty
    svg = line_chart("k", "t", "s", [(100.0, 0.0), (110.0, 5.0), (120.0, 10.0)], 600)
    assert 'data-samples="3"' in svg
    points = svg.split('points="')[1].split('"')[0].split()
    xs = [float(p.split(",")[0]) for p in points]
    assert xs[0] < 10 and xs[-1] > 230  # 20 s of samples across the width
    assert "max 10.0s" in svg


def _read(raw: bytes) -> Request:
    async def go() -> Request:
        reader = asyncio.StreamReader(limit=1024)
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_request(reader)

    return asyncio.run(go())


def test_form_post_is_parsed() -> None:
    body = b"token=t&message_id=a&message_id=%3Cb%3E&all=1"
    request = _read(
        b"POST /outbox/requeue?x=1 HTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    assert request.method == "POST" and request.path == "/outbox/requeue"
    assert request.form["message_id"] == ["a", "<b>"]
    assert request.query == {"x": ["1"]}


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: " + str(MAX_BODY + 1).encode() + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
        b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(101)) + b"\r\n",
    ],
    ids=["line", "version", "header", "length", "too-large", "truncated", "long", "headers"],
)
def test_bad_requests_are_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        _read(raw)


def test_responses_forbid_scripts() -> None:
    head = Response(HTTPStatus.OK, "x").encode().split(b"\r\n\r\n")[0].decode()
    assert "Content-Security-Policy: default-src 'none';" in head
    assert "X-Content-Type-Options: nosniff" in head and "Content-Length: 1" in head
