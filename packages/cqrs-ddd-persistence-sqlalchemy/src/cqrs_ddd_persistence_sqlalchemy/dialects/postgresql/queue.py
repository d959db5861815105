"""The PostgreSQL claim: one statement, ``FOR UPDATE SKIP LOCKED`` inside a materialised CTE.

The candidate ``SELECT`` is a ``MATERIALIZED`` CTE rather than an ``IN (subquery)``: the planner
may otherwise re-run a ``LIMIT`` subquery inside a semi-join and lock more rows than asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, String, Table, Update, bindparam, func, select, update

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept

__all__ = ["MAX_CHANNEL_BYTES", "check_channel", "claim_statement", "notify_statement"]


def claim_statement(
    table: Table,
    candidates: Select[Any],
    due: Any,
    values: Mapping[str, Any],
) -> Update:
    """``WITH c AS MATERIALIZED (candidates FOR UPDATE SKIP LOCKED) UPDATE t … RETURNING t.*``."""
    locked = candidates.with_for_update(skip_locked=True, of=table)
    cte = locked.cte("claimable").prefix_with("MATERIALIZED")
    return update(table).where(table.c.id == cte.c.id).values(**values).returning(*table.c)


#: PostgreSQL's identifier limit (``NAMEDATALEN - 1``) applies to channel names, in bytes.
MAX_CHANNEL_BYTES = 63


def check_channel(channel: str) -> str:
    """Refuse a channel name PostgreSQL would reject at ``pg_notify`` / ``LISTEN`` time."""
    if not channel or len(channel.encode()) > MAX_CHANNEL_BYTES:
        raise ConfigurationError(
            f"NOTIFY channel {channel[:80]!r} must be 1 to {MAX_CHANNEL_BYTES} bytes long "
            "(PostgreSQL's identifier limit)"
        )
    return channel


#: ``SELECT pg_notify(:channel, '')``: PostgreSQL folds identical notifications of one
#: transaction into one, delivered at commit.
NOTIFY = kept(select(func.pg_notify(bindparam("channel", type_=String), "")))


def notify_statement(channel: str) -> Select[Any]:
    """``SELECT pg_notify(<channel>, '')`` for one channel (checked: ``ConfigurationError``
    for a name PostgreSQL would refuse)."""
    return select(func.pg_notify(check_channel(channel), ""))
