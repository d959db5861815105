"""PostgreSQL DML pieces: ``ON CONFLICT`` inserts, ``= ANY(array)``, JSON from text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Table, any_, bindparam, cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import Insert as DialectInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["insert", "insert_ignore", "json_from_text", "one_of"]


def insert(table: Table) -> DialectInsert:
    """PostgreSQL ``INSERT`` with ``on_conflict_do_update`` / ``on_conflict_do_nothing``."""
    return pg_insert(table)


def insert_ignore(table: Table, conflict_columns: Sequence[Any]) -> Insert:
    """``INSERT … ON CONFLICT (conflict_columns) DO NOTHING``, built once per table and
    columns (a statement is immutable; stores built per request ask for it on every save)."""
    return _insert_ignore(table, tuple(conflict_columns))


@functools.lru_cache(maxsize=256)
def _insert_ignore(table: Table, conflict_columns: tuple[Any, ...]) -> Insert:
    return pg_insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``: one array parameter, so the statement is compiled once (an
    expanding ``IN`` is re-rendered for every list length) and can run on the driver."""
    param: BindParameter[Any] = bindparam(name, type_=ARRAY(column.type))
    return column == any_(param)


def json_from_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``CAST(value AS JSONB)``: JSON text made by the library's codec, parsed by the server."""
    return cast(value, JSONB)
