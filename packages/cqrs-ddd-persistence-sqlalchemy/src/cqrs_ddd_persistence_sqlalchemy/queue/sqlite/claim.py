"""The SQLite claim: a guarded ``UPDATE … WHERE id IN (…) AND <still due> RETURNING``.

SQLite has no row locks; the library's engine starts every transaction with ``BEGIN IMMEDIATE``
(one writer at a time), and the due condition is repeated on the updated row itself, so a row
claimed by another writer in between is never taken twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, Update, bindparam, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["claim_statement", "driver_cache", "insert_ignore", "one_of"]


def claim_statement(
    table: Table,
    candidates: Select[Any],
    due: Any,
    values: Mapping[str, Any],
) -> Update:
    """``UPDATE t SET … WHERE id IN (candidates) AND due RETURNING t.*``."""
    return (
        update(table)
        .where(table.c.id.in_(candidates.scalar_subquery()), due)
        .values(**values)
        .returning(*table.c)
    )


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column IN (:name)`` (an expanding parameter: a list)."""
    return column.in_(bindparam(name, expanding=True))


def driver_cache() -> None:
    """No driver path on SQLite (statements run through SQLAlchemy)."""


def insert_ignore(table: Table, index_elements: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING``."""
    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))


#: The library's SQLite engine issues ``BEGIN IMMEDIATE`` on every transaction start; keep
#: explicit transactions (autocommit would leave that one open).
AUTOCOMMIT_SINGLE_STATEMENTS = False
