"""The SQLite claim: a guarded ``UPDATE … WHERE id IN (…) AND <still due> RETURNING``.

SQLite has no row locks; the library's engine starts every transaction with ``BEGIN IMMEDIATE``
(one writer at a time), and the due condition is repeated on the updated row itself, so a row
claimed by another writer in between is never taken twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, Table, Update, update

__all__ = ["claim_statement"]


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
