"""A cheap replacement for ``pool_pre_ping`` on asyncpg.

SQLAlchemy's pre-ping on asyncpg runs ``BEGIN; ; ROLLBACK`` (a transaction so that it works
behind PgBouncer): three round trips on *every* pool checkout. A one-statement append or a job
completion is a single round trip, so the ping quadrupled their latency. This guard keeps what
the ping is for — a dead pooled connection is replaced before the application sees it — at
almost no cost:

- a connection whose socket the server closed (``pg_terminate_backend``, restart, idle-session
  timeout) is seen as closed by asyncpg without any I/O: it is replaced at checkout;
- a connection idle in the pool for longer than ``ping_after`` seconds (where a silent network
  drop or a firewall may have killed it without a FIN) gets one round trip of
  simple-protocol ``;`` (works in PgBouncer transaction mode: no prepared statement);
- a connection checked in again within ``ping_after`` is handed out without a ping. Should it
  die in that window without the client noticing, the first statement fails with the retryable
  ``ConnectionLostError`` and SQLAlchemy drops every pooled connection older than the failure.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import await_only

__all__ = ["DEFAULT_PING_AFTER", "install_checkout_guard"]

#: Seconds a pooled connection may sit idle before a checkout pings it.
DEFAULT_PING_AFTER = 5.0

_CHECKED_IN = "cqrs_ddd_checked_in_at"


def install_checkout_guard(engine: AsyncEngine, *, ping_after: float | None) -> None:
    """Replace closed pooled connections at checkout; ping those idle over ``ping_after`` s.

    ``ping_after=None`` never pings (closed sockets are still caught).
    """

    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is None or not hasattr(driver, "is_closed"):
            return
        if driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        since = record.info.get(_CHECKED_IN)
        if ping_after is None or since is None or time.monotonic() - since < ping_after:
            return
        try:
            # Simple query protocol (no arguments): no prepared statement, PgBouncer-safe.
            await_only(driver.execute(";"))
        except Exception as exc:  # any failure means: do not hand this connection out
            raise DisconnectionError(f"pooled connection failed its ping: {exc!r}") from exc

    event.listen(engine.sync_engine, "checkin", _checkin)
    event.listen(engine.sync_engine, "checkout", _checkout)
