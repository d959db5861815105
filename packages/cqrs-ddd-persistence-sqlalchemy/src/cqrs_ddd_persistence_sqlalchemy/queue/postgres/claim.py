"""The PostgreSQL claim: one statement, ``FOR UPDATE SKIP LOCKED`` inside a materialised CTE.

The candidate ``SELECT`` is a ``MATERIALIZED`` CTE rather than an ``IN (subquery)``: the planner
may otherwise re-run a ``LIMIT`` subquery inside a semi-join and lock more rows than asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table, Update, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["claim_statement", "insert_ignore", "notify_statement"]


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


def insert_ignore(table: Table, index_elements: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING``."""
    return pg_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))


def notify_statement(channel: str) -> Select[Any]:
    """``SELECT pg_notify(:channel, '')`` — PostgreSQL folds identical notifications of one
    transaction into one, delivered at commit."""
    return select(func.pg_notify(channel, ""))


#: One statement is atomic on its own: run single-statement queue operations in autocommit
#: (no ``BEGIN``/``COMMIT`` round trips).
AUTOCOMMIT_SINGLE_STATEMENTS = True
