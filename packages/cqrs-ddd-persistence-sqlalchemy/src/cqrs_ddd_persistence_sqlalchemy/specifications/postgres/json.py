"""PostgreSQL JSONB operators. Every key, path and document is a bound parameter.

``json`` columns are cast to ``jsonb``; key paths use ``#>`` with a ``text[]`` parameter;
``json_path_exists`` runs ``jsonb_path_exists`` in *strict* mode (no lax auto-unwrapping, so the
result agrees with SQLite and the in-memory evaluator), errors silenced, NULL read as false.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_persistence_sqlalchemy.specifications.registry import SQLAlchemyOperatorRegistry
from cqrs_ddd_persistence_sqlalchemy.specifications.target import (
    CompileContext,
    ScalarKind,
    Target,
    require_json,
    scalar_kind,
)
from cqrs_ddd_persistence_sqlalchemy.types.json import JSONType
from cqrs_ddd_specifications import Operator

__all__ = ["PostgresJson", "register"]

_TYPEOF = {"str": "string", "number": "number", "bool": "boolean"}
_CAST: dict[ScalarKind, sa.types.TypeEngine[Any]] = {
    "str": sa.Text(),
    "number": sa.Numeric(),
    "bool": sa.Boolean(),
}


def document(column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
    """The JSONB document (or sub-document at ``keys``) of ``column``."""
    doc: ColumnElement[Any]
    if isinstance(column.type, JSONB):
        doc = column
    elif isinstance(column.type, JSONType):
        # JSONType is JSONB on PostgreSQL already: no CAST, so GIN indexes still apply.
        doc = sa.type_coerce(column, JSONB)
    else:
        doc = sa.cast(column, JSONB)
    if keys:
        doc = doc.op("#>", return_type=JSONB)(sa.literal(list(keys), ARRAY(sa.Text)))
    return doc


class PostgresJson:
    """JSON access on PostgreSQL."""

    def scalar(
        self, column: ColumnElement[Any], keys: Sequence[str], kind: ScalarKind
    ) -> ColumnElement[Any]:
        doc = document(column, keys)
        text = doc.op("#>>", return_type=sa.Text)(sa.literal([], ARRAY(sa.Text)))
        value = text if kind == "str" else sa.cast(text, _CAST[kind])
        return sa.case((sa.func.jsonb_typeof(doc) == _TYPEOF[kind], value), else_=sa.null())

    def is_null(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        doc = document(column, keys)
        return sa.or_(doc.is_(None), sa.func.jsonb_typeof(doc) == "null")

    def is_empty(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        doc = document(column, keys)
        empties = [sa.literal(v, JSONB) for v in ("", [], {})]  # type: ignore[var-annotated]
        return sa.or_(self.is_null(column, keys), doc.in_(empties))


def _doc(target: Target) -> ColumnElement[Any]:
    require_json(target)
    return document(target.expr, target.json_path)


def _present(doc: ColumnElement[Any], predicate: ColumnElement[bool]) -> ColumnElement[bool]:
    # A JSON null is a null value (``is_null`` holds): like a missing one it satisfies no other
    # operator, although ``'null' @> 'null'`` and ``jsonb_path_exists('null', '$')`` are true.
    return sa.and_(sa.func.jsonb_typeof(doc) != "null", predicate)


def json_contains(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    doc = _doc(target)
    return _present(doc, doc.op("@>", return_type=sa.Boolean)(sa.literal(value, JSONB)))


def json_contained_by(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    doc = _doc(target)
    return _present(doc, doc.op("<@", return_type=sa.Boolean)(sa.literal(value, JSONB)))


def json_has_key(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _doc(target).op("?", return_type=sa.Boolean)(sa.literal(value, sa.Text))


def json_has_any(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _doc(target).op("?|", return_type=sa.Boolean)(sa.literal(list(value), ARRAY(sa.Text)))


def json_has_all(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _doc(target).op("?&", return_type=sa.Boolean)(sa.literal(list(value), ARRAY(sa.Text)))


def json_path_exists(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    path = sa.cast(sa.literal(f"strict {value}", sa.Text), JSONPATH)
    doc = _doc(target)
    found = sa.func.jsonb_path_exists(doc, path, sa.literal({}, JSONB), sa.true(), type_=sa.Boolean)
    return sa.func.coalesce(_present(doc, found), sa.false())


def all_(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    for item in value:
        scalar_kind(item, target)  # JSON holds no dates, UUIDs ...: refused, not sent
    doc = _doc(target)
    return sa.and_(
        sa.func.jsonb_typeof(doc) == "array",
        doc.op("@>", return_type=sa.Boolean)(sa.literal(list(value), JSONB)),
    )


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register the JSONB operators and JSON access for ``postgresql``."""
    registry.set_json_access("postgresql", PostgresJson())
    for op, function in {
        Operator.JSON_CONTAINS: json_contains,
        Operator.JSON_CONTAINED_BY: json_contained_by,
        Operator.JSON_HAS_KEY: json_has_key,
        Operator.JSON_HAS_ANY: json_has_any,
        Operator.JSON_HAS_ALL: json_has_all,
        Operator.JSON_PATH_EXISTS: json_path_exists,
        Operator.ALL: all_,
    }.items():
        registry.add(op, function, dialect="postgresql")
