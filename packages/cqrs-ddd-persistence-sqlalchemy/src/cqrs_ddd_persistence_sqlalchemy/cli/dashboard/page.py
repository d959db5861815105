"""The operations page as one server-rendered HTML document.

Everything read from the database is untrusted text (a dead letter's error is whatever an
exception said, an event type or a holder's query is whatever an application wrote) and goes
through :func:`html.escape` (quotes included: it also lands in attributes). The page has no
script; the server adds a Content-Security-Policy that forbids any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape

from cqrs_ddd_advanced_core.jobs import JobStatus
from cqrs_ddd_advanced_core.sagas import SagaStatus
from cqrs_ddd_persistence_sqlalchemy.cli._views import format_seconds, queue_stats_rows
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.charts import line_chart
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.history import METRICS, History
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.snapshot import (
    EventStoreView,
    JobsView,
    OutboxView,
    ProjectionsView,
    Snapshot,
)
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.style import CSS
from cqrs_ddd_persistence_sqlalchemy.cli.health import Thresholds

__all__ = ["PageOptions", "render_page"]

#: Characters of a dead letter's error shown (the rest is in the table, not on the page).
ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class PageOptions:
    """How the page is rendered: its actions' form token (``None``: read-only), the reload
    interval (0: none) and the lag thresholds that colour a line."""

    action_token: str | None = None
    refresh_s: int = 10
    limits: Thresholds = field(default_factory=Thresholds)


def render_page(
    snapshot: Snapshot, history: History, options: PageOptions, notice: str | None = None
) -> str:
    """The whole page for ``snapshot`` and the charts of ``history``."""
    parts = [_head(options), _header(snapshot, history, options, notice), _charts(history)]
    parts.append('<div class="grid">')
    parts.append(_outbox(snapshot.outbox, options))
    parts.append(_jobs(snapshot.jobs, options.limits))
    parts.append(_projections(snapshot.projections, options.limits))
    parts.append(_sagas(snapshot.sagas))
    parts.append(_event_store(snapshot.event_store, options.limits))
    parts.append("</div>")
    if snapshot.missing:
        parts.append(
            f'<p class="muted" id="missing">tables not found (their panels are left out): '
            f"{escape(', '.join(snapshot.missing))}</p>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def _head(options: PageOptions) -> str:
    refresh = (
        f'<meta http-equiv="refresh" content="{int(options.refresh_s)}; url=/">'
        if options.refresh_s > 0
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>cqrs-ddd operations</title>{refresh}<style>{CSS}</style></head><body>"
    )


def _header(snapshot: Snapshot, history: History, options: PageOptions, notice: str | None) -> str:
    mode = (
        '<span class="badge warn" id="mode">actions enabled</span>'
        if options.action_token
        else '<span class="badge" id="mode">read-only</span>'
    )
    out = [
        f"<header><h1>Operations</h1>{mode}",
        f'<p class="muted"><span id="where">{escape(snapshot.where)}</span> · read at '
        f'<span id="taken-at">{escape(snapshot.taken_at.isoformat(timespec="seconds"))}</span>'
        f" · {len(history)} sample(s), one every {escape(format_seconds(history.every_s))}</p>",
        "</header>",
    ]
    if notice:
        out.append(f'<p class="notice" id="notice">{escape(notice)}</p>')
    if history.last_error:
        out.append(
            f'<p class="notice fail" id="sample-error">last sample failed: '
            f"{escape(history.last_error)}</p>"
        )
    return "".join(out)


def _charts(history: History) -> str:
    charts = (
        line_chart(m.key, m.title, m.unit, history.series(m.key), history.window_s) for m in METRICS
    )
    return f'<section class="charts" id="charts">{"".join(charts)}</section>'


def _panel(panel_id: str, title: str, body: Iterable[str]) -> str:
    return (
        f'<section class="panel" id="{panel_id}"><h2>{escape(title)}</h2>{"".join(body)}</section>'
    )


def _outbox(view: OutboxView | None, options: PageOptions) -> str:
    if view is None:
        return ""
    rows = []
    for label, value in queue_stats_rows(view.stats, done_label="published"):
        key = label.split()[0]
        cls = options.limits.grade(view.stats.lag_seconds) if key == "oldest" else ""
        if key == "dead" and view.stats.dead:
            cls = "warn"
        rows.append(
            f'<tr><th>{escape(label)}</th><td id="outbox-{key}" class="num {cls}">'
            f"{escape(value)}</td></tr>"
        )
    body = [f'<table class="kv">{"".join(rows)}</table>']
    body.append(_dead_letters(view, options.action_token))
    return _panel("outbox", "Outbox", body)


def _dead_letters(view: OutboxView, token: str | None) -> str:
    if not view.dead_letters:
        return '<p class="muted" id="no-dead-letters">no dead letters</p>'
    shown = len(view.dead_letters)
    out = [f"<h3>Dead letters ({shown} of {view.stats.dead}, oldest first)</h3>"]
    if token:
        out.append(_requeue_form(token, None, "requeue all", "requeue-all"))
    out.append(
        '<table class="list" id="dead-letters"><tr><th>message</th><th>event type</th>'
        "<th>attempts</th><th>created</th><th>last error</th>"
        + ("<th></th>" if token else "")
        + "</tr>"
    )
    for m in view.dead_letters:
        error = (m.error or "")[:ERROR_CHARS]
        out.append(
            f'<tr data-message-id="{escape(m.message_id)}"><td class="mono nowrap">'
            f"{escape(m.message_id)}</td><td>{escape(m.event_type)}</td>"
            f'<td class="num">{m.retry_count}</td>'
            f'<td class="nowrap">{escape(m.created_at.isoformat(timespec="seconds"))}</td>'
            f'<td><pre class="error">{escape(error)}</pre></td>'
        )
        if token:
            out.append(f"<td>{_requeue_form(token, m.message_id, 'requeue', None)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _requeue_form(token: str, message_id: str | None, label: str, form_id: str | None) -> str:
    target = (
        f'<input type="hidden" name="message_id" value="{escape(message_id)}">'
        if message_id is not None
        else '<input type="hidden" name="all" value="1">'
    )
    ident = f' id="{form_id}"' if form_id else ""
    return (
        f'<form method="post" action="/outbox/requeue" class="action"{ident}>'
        f'<input type="hidden" name="token" value="{escape(token)}">{target}'
        f'<button type="submit">{escape(label)}</button></form>'
    )


def _jobs(view: JobsView | None, limits: Thresholds) -> str:
    if view is None:
        return ""
    statuses = list(JobStatus)
    head = "".join(f"<th>{escape(s.value.lower())}</th>" for s in statuses)
    totals = "".join(
        f'<td class="num" id="jobs-{escape(s.value.lower())}">{view.by_status.get(s, 0)}</td>'
        for s in statuses
    )
    rows = [f'<tr class="total"><th>all types</th>{totals}</tr>']
    for job_type, counts in view.by_type.items():
        cells = "".join(
            f'<td class="num" data-type="{escape(job_type)}" data-status="'
            f'{escape(s.value.lower())}">{counts.get(s, 0)}</td>'
            for s in statuses
        )
        rows.append(f"<tr><th>{escape(job_type)}</th>{cells}</tr>")
    stalled_cls = limits.grade(view.stalled_age_s) if view.stalled else ""
    stalled = (
        f'<p>stalled (lease expired, worker gone): <b id="jobs-stalled" class="{stalled_cls}">'
        f"{view.stalled}</b>"
        + (
            f" · oldest expired {escape(format_seconds(view.stalled_age_s))} ago"
            if view.stalled
            else ""
        )
        + "</p>"
    )
    table = (
        f'<table class="list" id="jobs-table"><tr><th>type</th>{head}</tr>{"".join(rows)}</table>'
    )
    return _panel("jobs", "Jobs", [stalled, table])


def _projections(view: ProjectionsView | None, limits: Thresholds) -> str:
    if view is None:
        return ""
    body = [f'<p>log head: position <b id="log-head">{view.head}</b></p>']
    if not view.lags:
        body.append('<p class="muted">no projection has a checkpoint yet</p>')
        return _panel("projections", "Projections", body)
    rows = []
    for lag in view.lags:
        cls = limits.grade(lag.age_s) if lag.behind and lag.exact else ""
        behind = str(lag.behind) if lag.exact else f"≤ {lag.behind}"
        rows.append(
            f'<tr data-projection="{escape(lag.projection)}"><th>{escape(lag.projection)}</th>'
            f'<td class="num position">{lag.position or 0}</td>'
            f'<td class="num behind {cls}">{escape(behind)}</td>'
            f'<td class="num age">{escape(format_seconds(lag.age_s))} ago</td></tr>'
        )
    body.append(
        '<table class="list" id="projections-table"><tr><th>projection</th><th>checkpoint</th>'
        f"<th>events behind</th><th>last checkpoint</th></tr>{''.join(rows)}</table>"
        '<p class="muted small">≤: events of every type after the checkpoint (an upper bound; '
        "<code>cqrs-ddd-sqla projections status -p …</code> counts only the handled types)</p>"
    )
    return _panel("projections", "Projections", body)


def _sagas(view: Mapping[str, Mapping[str, int]] | None) -> str:
    if view is None:
        return ""
    known = [s.value for s in SagaStatus]
    extra = sorted({s for counts in view.values() for s in counts} - set(known))
    statuses = known + extra
    head = "".join(f"<th>{escape(s.lower())}</th>" for s in statuses)
    totals = "".join(
        f'<td class="num" id="sagas-{escape(s.lower())}">'
        f"{sum(c.get(s, 0) for c in view.values())}</td>"
        for s in statuses
    )
    rows = [f'<tr class="total"><th>all types</th>{totals}</tr>']
    for saga_type, counts in view.items():
        cells = "".join(
            f'<td class="num" data-saga-type="{escape(saga_type)}" data-status="'
            f'{escape(s.lower())}">{counts.get(s, 0)}</td>'
            for s in statuses
        )
        rows.append(f"<tr><th>{escape(saga_type)}</th>{cells}</tr>")
    table = (
        f'<table class="list" id="sagas-table"><tr><th>type</th>{head}</tr>{"".join(rows)}</table>'
    )
    return _panel("sagas", "Sagas", [table])


def _event_store(view: EventStoreView | None, limits: Thresholds) -> str:
    if view is None:
        return ""
    h = view.horizon
    rows = [
        ("head position", "es-head", str(view.head), ""),
        ("events stored", "es-events", str(view.events), ""),
        (
            "commit-safe horizon (txid)",
            "es-horizon",
            "-" if h.horizon_txid is None else str(h.horizon_txid),
            "",
        ),
        ("events above the horizon", "es-held", str(h.invisible_events), ""),
    ]
    table = "".join(
        f'<tr><th>{escape(label)}</th><td id="{ident}" class="num {cls}">{escape(value)}</td></tr>'
        for label, ident, value, cls in rows
    )
    body = [f'<table class="kv">{table}</table>', _holder(view, limits)]
    return _panel("event-store", "Event store", body)


def _holder(view: EventStoreView, limits: Thresholds) -> str:
    holder = view.holder
    if holder is None:
        return '<p class="muted" id="es-no-holder">no open transaction holds the horizon back</p>'
    age = holder.xact_age_s
    fields = [
        ("pid", "es-holder-pid", str(holder.pid)),
        ("user", "es-holder-user", holder.user or "-"),
        ("application", "es-holder-application", holder.application or "-"),
        ("client", "es-holder-client", holder.client or "local socket"),
        ("state", "es-holder-state", holder.state or "-"),
        ("transaction open for", "es-holder-age", format_seconds(age)),
    ]
    rows = "".join(
        f'<tr><th>{escape(label)}</th><td id="{ident}">{escape(value)}</td></tr>'
        for label, ident, value in fields
    )
    return (
        f'<h3 class="{limits.grade(age)}">Session holding the horizon back</h3>'
        f'<table class="kv" id="es-holder">{rows}</table>'
        f'<pre class="query" id="es-holder-query">{escape(holder.query or "")}</pre>'
        f'<p class="muted small">end it with <code>SELECT pg_terminate_backend({holder.pid})'
        "</code> if it is stuck</p>"
    )
