"""PostgreSQL DML for the repository: ``INSERT … ON CONFLICT (pk) DO NOTHING``, ``now()``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["insert_if_absent"]


def insert_if_absent(table: sa.Table, key: Sequence[sa.Column[Any]]) -> Insert:
    """An INSERT that writes nothing (rowcount 0) when a row with the same ``key`` exists.

    Only a conflict on ``key`` is swallowed; any other unique violation still raises.
    """
    return pg_insert(table).on_conflict_do_nothing(index_elements=list(key))
