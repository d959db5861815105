"""SQLite DML pieces: ``ON CONFLICT`` inserts, expanding ``IN``, JSON stored as text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam
from sqlalchemy.dialects.sqlite import Insert as DialectInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["insert", "insert_ignore", "json_from_text", "one_of"]


def insert(table: Table) -> DialectInsert:
    """SQLite ``INSERT`` with ``on_conflict_do_update`` / ``on_conflict_do_nothing``."""
    return sqlite_insert(table)


def insert_ignore(table: Table, conflict_columns: Sequence[Any]) -> Insert:
    """``INSERT … ON CONFLICT (conflict_columns) DO NOTHING``, built once per table and
    columns (a statement is immutable; stores built per request ask for it on every save)."""
    return _insert_ignore(table, tuple(conflict_columns))


@functools.lru_cache(maxsize=256)
def _insert_ignore(table: Table, conflict_columns: tuple[Any, ...]) -> Insert:
    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column IN (:name)`` (an expanding parameter: a list)."""
    return column.in_(bindparam(name, expanding=True))


def json_from_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite stores JSON as text: the value as it is."""
    return value
