"""The PostgreSQL claim: one statement, ``FOR UPDATE SKIP LOCKED`` inside a materialised CTE.

The candidate ``SELECT`` is a ``MATERIALIZED`` CTE rather than an ``IN (subquery)``: the planner
may otherwise re-run a ``LIMIT`` subquery inside a semi-join and lock more rows than asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Table,
    Update,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.postgres.driver import DriverStatements

__all__ = [
    "MAX_CHANNEL_BYTES",
    "check_channel",
    "claim_statement",
    "driver_cache",
    "insert_ignore",
    "notify_statement",
    "one_of",
]


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


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``: one array parameter, so the statement is compiled once (an
    expanding ``IN`` is re-rendered for every list length) and can run on the driver."""
    param: BindParameter[Any] = bindparam(name, type_=ARRAY(column.type))
    return column == any_(param)


def driver_cache() -> DriverStatements:
    """Driver forms of a queue's statements (used only on asyncpg, outside a UoW)."""
    return DriverStatements()


def insert_ignore(table: Table, index_elements: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING``."""
    return pg_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))


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


def notify_statement(channel: str) -> Select[Any]:
    """``SELECT pg_notify(:channel, '')`` — PostgreSQL folds identical notifications of one
    transaction into one, delivered at commit. Raises ``ConfigurationError`` for a channel
    name longer than 63 bytes."""
    return select(func.pg_notify(check_channel(channel), ""))


#: One statement is atomic on its own: run single-statement queue operations in autocommit
#: (no ``BEGIN``/``COMMIT`` round trips).
AUTOCOMMIT_SINGLE_STATEMENTS = True
