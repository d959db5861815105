"""The session holding the event log's horizon back, from ``pg_stat_activity``.

The horizon is ``pg_snapshot_xmin(pg_current_snapshot())``: the oldest transaction that has a
transaction id (it wrote something) and is still open. Read-only transactions have none and hold
nothing back, hence ``backend_xid IS NOT NULL``; the oldest id (``age(backend_xid)``) is the
holder. Without ``pg_read_all_stats`` the server shows another user's query as
``<insufficient privilege>``.
"""

from __future__ import annotations

from sqlalchemy import text

from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import HorizonHolder
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner

__all__ = ["horizon_holder"]

#: Characters of the holder's current query shown (a batch of statements can be megabytes).
QUERY_CHARS = 2000

_HOLDER = text(
    "SELECT pid, usename, application_name, host(client_addr), state, xact_start, "
    "extract(epoch FROM clock_timestamp() - xact_start), left(query, :chars) "
    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
    "ORDER BY age(backend_xid) DESC LIMIT 1"
)


async def horizon_holder(runner: StatementRunner) -> HorizonHolder | None:
    """The session of the oldest open transaction with a transaction id, or ``None``."""
    rows = await runner.fetch(_HOLDER, {"chars": QUERY_CHARS})
    if not rows:
        return None
    pid, user, application, client, state, started, age, query = rows[0]
    return HorizonHolder(
        pid=int(pid),
        user=user,
        application=application or None,
        client=client,
        state=state,
        xact_started=started,
        xact_age_s=float(age) if age is not None else None,
        query=query,
    )
