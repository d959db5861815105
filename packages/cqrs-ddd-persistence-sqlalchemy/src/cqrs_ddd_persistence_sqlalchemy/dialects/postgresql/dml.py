"""PostgreSQL DML pieces: ``ON CONFLICT`` inserts, batch inserts from arrays (``unnest``),
``= ANY(array)``, JSON from text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import Insert as DialectInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

__all__ = ["insert", "insert_ignore", "insert_many", "insert_one", "json_from_text", "one_of"]


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


def insert_many(
    table: Table,
    columns: Sequence[str],
    *,
    json_columns: Sequence[str] = (),
    shared_columns: Sequence[str] = (),
    ignore_conflicts_on: Sequence[str] | None = None,
) -> Insert:
    """``INSERT INTO t (a, b, …) SELECT … FROM unnest(:a, :b, …)``: a batch of rows in one
    statement and one round trip, each column's values one array parameter named after it
    (JSON columns as JSON text, parsed by the server); a shared column (the same value in every
    row: a time stamp, a job type) is one scalar parameter instead of an array to encode and
    unnest. The statement text does not depend on the batch size, so it is prepared once; an
    ``executemany`` would process and send the parameters row by row."""
    return _insert_many(
        table,
        tuple(columns),
        tuple(json_columns),
        tuple(shared_columns),
        tuple(ignore_conflicts_on or ()),
    )


@functools.lru_cache(maxsize=256)
def _insert_many(
    table: Table,
    columns: tuple[str, ...],
    json_columns: tuple[str, ...],
    shared_columns: tuple[str, ...],
    conflict_columns: tuple[str, ...],
) -> Insert:
    def typed(name: str) -> Any:
        return Text() if name in json_columns else table.c[name].type

    unnested = [name for name in columns if name not in shared_columns]
    batch = (
        func.unnest(*(bindparam(name, type_=ARRAY(typed(name))) for name in unnested))
        .table_valued(*unnested, name="batch")
        .render_derived()
    )
    values = []
    for name in columns:
        value = bindparam(name, type_=typed(name)) if name in shared_columns else batch.c[name]
        values.append(json_from_text(value) if name in json_columns else value)
    stmt = pg_insert(table).from_select(
        list(columns), select(*values).select_from(batch), include_defaults=False
    )
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
    """``INSERT INTO t (a, b, …) SELECT :a, :b, …``: one row, scalar parameters (no array to
    encode), and no client-side default added (``include_defaults=False``: columns left out
    get their server defaults), so it is kept and runs on the driver."""
    return _insert_one(table, tuple(columns), tuple(json_columns), tuple(ignore_conflicts_on or ()))


@functools.lru_cache(maxsize=256)
def _insert_one(
    table: Table,
    columns: tuple[str, ...],
    json_columns: tuple[str, ...],
    conflict_columns: tuple[str, ...],
) -> Insert:
    values = select(
        *(
            json_from_text(bindparam(name, type_=Text()))
            if name in json_columns
            else bindparam(name, type_=table.c[name].type)
            for name in columns
        )
    )
    stmt = pg_insert(table).from_select(list(columns), values, include_defaults=False)
    if conflict_columns:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict_columns))
    return stmt


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``: one array parameter, so the statement is compiled once (an
    expanding ``IN`` is re-rendered for every list length) and can run on the driver."""
    param: BindParameter[Any] = bindparam(name, type_=ARRAY(column.type))
    return column == any_(param)


def json_from_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``CAST(value AS JSONB)``: JSON text made by the library's codec, parsed by the server."""
    return cast(value, JSONB)
