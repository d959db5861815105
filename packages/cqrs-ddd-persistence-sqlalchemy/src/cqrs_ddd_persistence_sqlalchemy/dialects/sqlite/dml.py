"""SQLite DML pieces: ``ON CONFLICT`` inserts, expanding ``IN``, JSON stored as text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, Text, bindparam
from sqlalchemy.dialects.sqlite import Insert as DialectInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["insert", "insert_ignore", "insert_many", "insert_one", "json_from_text", "one_of"]


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


def insert_many(
    table: Table,
    columns: Sequence[str],
    *,
    json_columns: Sequence[str] = (),
    shared_columns: Sequence[str] = (),
    ignore_conflicts_on: Sequence[str] | None = None,
) -> Insert:
    """``INSERT INTO t (a, b, …) VALUES (:a, :b, …)`` for an ``executemany`` (one parameter
    set per row: SQLite has no array parameters; the driver runs the batch in one call; shared
    columns too are in every parameter set). JSON columns take JSON text, stored as it is."""
    return _insert_many(
        table, tuple(columns), tuple(json_columns), tuple(ignore_conflicts_on or ())
    )


@functools.lru_cache(maxsize=256)
def _insert_many(
    table: Table,
    columns: tuple[str, ...],
    json_columns: tuple[str, ...],
    conflict_columns: tuple[str, ...],
) -> Insert:
    values = {
        name: bindparam(name, type_=Text() if name in json_columns else table.c[name].type)
        for name in columns
    }
    stmt = sqlite_insert(table).values(values)
    if conflict_columns:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict_columns))
    return stmt


def insert_one(
    table: Table,
    columns: Sequence[str],
    *,
    json_columns: Sequence[str] = (),
    ignore_conflicts_on: Sequence[str] | None = None,
) -> Insert:
    """One row: :func:`insert_many`'s statement with one parameter set."""
    return insert_many(
        table, columns, json_columns=json_columns, ignore_conflicts_on=ignore_conflicts_on
    )


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column IN (:name)`` (an expanding parameter: a list)."""
    return column.in_(bindparam(name, expanding=True))


def json_from_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite stores JSON as text: the value as it is."""
    return value
