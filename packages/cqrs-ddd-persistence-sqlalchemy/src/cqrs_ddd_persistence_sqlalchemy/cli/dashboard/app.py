"""The dashboard's two routes: ``GET /`` (the page) and ``POST /outbox/requeue`` (an action).

Actions change the database, so they are refused (``403``) unless the dashboard was started
with ``--allow-actions``; then a form must also carry the per-process token the page put in it
(another site's page cannot post one: no cross-site request forgery).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from html import escape
from http import HTTPStatus

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import _message
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.history import History
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.http import Request, Response
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.page import PageOptions, render_page
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.snapshot import Snapshot
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.style import CSS

__all__ = ["Dashboard"]

log = logging.getLogger("cqrs_ddd.dashboard")

#: Message ids one requeue may name.
MAX_IDS = 1000
ACTIONS_OFF = (
    "Actions are disabled: this dashboard is read-only. Restart it with --allow-actions to "
    "requeue dead letters."
)


class Dashboard:
    """Answers the page and the actions for one engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        take: Callable[[], Awaitable[Snapshot]],
        history: History,
        *,
        allow_actions: bool = False,
        options: PageOptions | None = None,
    ) -> None:
        self.engine = engine
        self._take = take
        self.history = history
        token = secrets.token_urlsafe(24) if allow_actions else None
        options = options or PageOptions()
        self.options = PageOptions(token, options.refresh_s, options.limits)

    async def handle(self, request: Request) -> Response:
        try:
            if request.path == "/":
                if request.method != "GET":
                    return _page_of(HTTPStatus.METHOD_NOT_ALLOWED, "Use GET.", {"Allow": "GET"})
                return await self._page(request)
            if request.path == "/outbox/requeue":
                if request.method != "POST":
                    return _page_of(
                        HTTPStatus.METHOD_NOT_ALLOWED, "Use the page's button.", {"Allow": "POST"}
                    )
                return await self._requeue(request)
            return _page_of(HTTPStatus.NOT_FOUND, "Nothing here: the page is at /.")
        except Exception as exc:
            message = _message(exc)
            if message is None:  # a bug: logged in full, not shown to whoever asked
                log.exception("dashboard request failed")
                message = "internal error (see the dashboard's log)"
            return _page_of(HTTPStatus.SERVICE_UNAVAILABLE, message)

    async def _page(self, request: Request) -> Response:
        notice = None
        requeued = request.query.get("requeued", [""])[0]
        if requeued.isdigit():
            notice = f"requeued {int(requeued)} message(s)"
        snapshot = await self._take()
        return Response(HTTPStatus.OK, render_page(snapshot, self.history, self.options, notice))

    async def _requeue(self, request: Request) -> Response:
        from cqrs_ddd_persistence_sqlalchemy.outbox import SQLAlchemyOutboxStorage

        token = self.options.action_token
        if token is None:
            return _page_of(HTTPStatus.FORBIDDEN, ACTIONS_OFF)
        sent = request.form.get("token", [""])[0]
        if not secrets.compare_digest(sent.encode(), token.encode()):
            return _page_of(
                HTTPStatus.FORBIDDEN, "Missing or stale form token: reload the page and try again."
            )
        ids = request.form.get("message_id", [])
        everything = request.form.get("all") == ["1"]
        if not ids and not everything:
            return _page_of(HTTPStatus.BAD_REQUEST, "Name the message ids to requeue, or all.")
        if len(ids) > MAX_IDS:
            return _page_of(HTTPStatus.BAD_REQUEST, f"At most {MAX_IDS} message ids at a time.")
        count = await SQLAlchemyOutboxStorage(self.engine).requeue(None if everything else ids)
        log.warning("dashboard: requeued %d dead letter(s)", count)
        return Response(HTTPStatus.SEE_OTHER, headers={"Location": f"/?requeued={count}"})


def _page_of(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> Response:
    body = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{status.value} '
        f"{escape(status.phrase)}</title><style>{CSS}</style></head><body>"
        f'<h1>{status.value} {escape(status.phrase)}</h1><p id="message">{escape(message)}</p>'
        '<p><a href="/">back to the operations page</a></p></body></html>'
    )
    return Response(status, body, headers=headers or {})
