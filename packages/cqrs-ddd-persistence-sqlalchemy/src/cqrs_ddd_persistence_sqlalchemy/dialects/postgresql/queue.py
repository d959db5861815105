"""The PostgreSQL claim: one statement, ``FOR UPDATE SKIP LOCKED`` inside a materialised CTE.

The candidate ``SELECT`` is a ``MATERIALIZED`` CTE rather than an ``IN (subquery)``: the planner
may otherwise re-run a ``LIMIT`` subquery inside a semi-join and lock more rows than asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, String, Table, Update, bindparam, func, select, update

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.schema import check_channel

__all__ = ["NOTIFY", "check_channel", "claim_statement", "notify_statement"]


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


#: ``SELECT pg_notify(:channel, '')``: PostgreSQL folds identical notifications of one
#: transaction into one, delivered at commit.
NOTIFY = kept(select(func.pg_notify(bindparam("channel", type_=String), "")))


@functools.lru_cache(maxsize=256)
def notify_statement(channel: str) -> Select[Any]:
    """``SELECT pg_notify(<channel>, '')`` for one channel (checked: ``ConfigurationError``
    for a name PostgreSQL would refuse), built once per channel and kept (see
    :func:`~...execution.protocol.kept`): the outbox sends it with every save."""
    return kept(select(func.pg_notify(check_channel(channel), "")))
