"""SQLite JSON1 equivalents of the JSONB operators.

Containment is decomposed, from the (known) value, into ``json_each`` subqueries whose keys and
values are bound parameters, following PostgreSQL's ``@>`` rules: objects contain sub-objects,
arrays contain arrays element-wise, a top-level array contains a scalar, booleans are not
numbers. Key paths are bound ``$."key"`` strings (keys may not contain ``"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_persistence_sqlalchemy.specifications.registry import SQLAlchemyOperatorRegistry
from cqrs_ddd_persistence_sqlalchemy.specifications.target import (
    CompileContext,
    ScalarKind,
    Target,
    require_json,
    scalar_kind,
)
from cqrs_ddd_specifications import Operator

__all__ = ["SqliteJson", "register"]

_TYPES: dict[ScalarKind, tuple[str, ...]] = {
    "str": ("text",),
    "number": ("integer", "real"),
    "bool": ("true", "false"),
}


def json_path(keys: Sequence[str]) -> str:
    """``$."a"."b"`` for keys ``("a", "b")``."""
    return "$" + "".join(f'."{key}"' for key in keys)


class _Node:
    """A JSON value inside a query: its SQL value and its ``json_type``."""

    def __init__(self, value: ColumnElement[Any], type_: ColumnElement[Any]) -> None:
        self.value = value
        self.type = type_

    @classmethod
    def at(cls, column: ColumnElement[Any], keys: Sequence[str]) -> _Node:
        path = sa.literal(json_path(keys), sa.Text)
        return cls(sa.func.json_extract(column, path), sa.func.json_type(column, path))

    def children(self) -> Any:
        # json_extract() returns a JSON string unquoted, and json_each() of text that is not JSON
        # fails ("malformed JSON"). The type tests guarding each walk do not stop SQLite from
        # evaluating it, so only arrays and objects are walked; anything else is an empty array.
        walked = sa.case(
            (self.type.in_(["array", "object"]), self.value), else_=sa.literal("[]", sa.Text)
        )
        return sa.func.json_each(walked).table_valued("key", "value", "type").alias()


def _scalar_match(node: _Node, value: Any) -> ColumnElement[bool]:
    if value is None:
        return node.type == "null"
    if isinstance(value, bool):
        return node.type == ("true" if value else "false")
    if isinstance(value, int | float):
        return sa.and_(node.type.in_(["integer", "real"]), node.value == value)
    return sa.and_(node.type == "text", node.value == value)


def _exists(node: _Node, test: Any) -> ColumnElement[bool]:
    each = node.children()
    child = _Node(each.c.value, each.c.type)
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(test(each, child)))


def contains(node: _Node, sub: Any, *, top: bool = True) -> ColumnElement[bool]:
    """``node @> sub``."""
    if isinstance(sub, Mapping):
        return sa.and_(
            node.type == "object",
            *[
                _exists(
                    node,
                    lambda each, child, k=key, v=item: sa.and_(
                        each.c.key == k, contains(child, v, top=False)
                    ),
                )
                for key, item in sub.items()
            ],
        )
    if isinstance(sub, list | tuple):
        return sa.and_(
            node.type == "array",
            *[
                _exists(node, lambda each, child, v=item: contains(child, v, top=False))
                for item in sub
            ],
        )
    if top:
        return sa.or_(
            _scalar_match(node, sub),
            sa.and_(node.type == "array", _exists(node, lambda e, c: _scalar_match(c, sub))),
        )
    return _scalar_match(node, sub)


def contained_by(node: _Node, sup: Any, *, top: bool = True) -> ColumnElement[bool]:
    """``node <@ sup`` (i.e. ``sup @> node``)."""
    if isinstance(sup, Mapping):
        return sa.and_(
            node.type == "object",
            sa.not_(
                _exists(
                    node,
                    lambda each, child: sa.not_(
                        sa.or_(
                            sa.false(),
                            *[
                                sa.and_(each.c.key == k, contained_by(child, v, top=False))
                                for k, v in sup.items()
                            ],
                        )
                    ),
                )
            ),
        )
    if isinstance(sup, list | tuple):
        as_array = sa.and_(
            node.type == "array",
            sa.not_(
                _exists(
                    node,
                    lambda each, child: sa.not_(
                        sa.or_(sa.false(), *[contained_by(child, v, top=False) for v in sup])
                    ),
                )
            ),
        )
        if not top:
            return as_array
        scalars = [v for v in sup if not isinstance(v, Mapping | list | tuple)]
        return sa.or_(as_array, *[_scalar_match(node, v) for v in scalars])
    return _scalar_match(node, sup)


def has_key(node: _Node, key: str) -> ColumnElement[bool]:
    """PostgreSQL's ``?``: an object key, a string array element, or the string itself."""
    return sa.or_(
        sa.and_(node.type == "object", _exists(node, lambda each, child: each.c.key == key)),
        sa.and_(
            node.type == "array",
            _exists(node, lambda each, child: sa.and_(child.type == "text", child.value == key)),
        ),
        sa.and_(node.type == "text", node.value == key),
    )


class SqliteJson:
    """JSON access on SQLite."""

    def scalar(
        self, column: ColumnElement[Any], keys: Sequence[str], kind: ScalarKind
    ) -> ColumnElement[Any]:
        node = _Node.at(column, keys)
        if kind == "bool":
            return sa.case((node.type == "true", sa.true()), (node.type == "false", sa.false()))
        return sa.case((node.type.in_(_TYPES[kind]), node.value), else_=sa.null())

    def is_null(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        node = _Node.at(column, keys)
        return sa.or_(column.is_(None), node.type.is_(None), node.type == "null")

    def is_empty(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        node = _Node.at(column, keys)
        return sa.or_(
            self.is_null(column, keys),
            sa.and_(node.type == "text", node.value == ""),
            sa.and_(node.type == "array", node.value == "[]"),
            sa.and_(node.type == "object", node.value == "{}"),
        )


def _node(target: Target) -> _Node:
    require_json(target)
    return _Node.at(target.expr, target.json_path)


def _present(node: _Node, predicate: ColumnElement[bool]) -> ColumnElement[bool]:
    # A JSON null is a null value (``is_null`` holds): like a missing one it satisfies no other
    # operator (PostgreSQL's ``'null' @> 'null'`` is true; the compiler keeps both false).
    return sa.and_(node.type != "null", predicate)


def json_contains(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    node = _node(target)
    return _present(node, contains(node, value))


def json_contained_by(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    node = _node(target)
    return _present(node, contained_by(node, value))


def json_has_key(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return has_key(_node(target), value)


def json_has_any(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    node = _node(target)
    return sa.or_(*[has_key(node, key) for key in value])


def json_has_all(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    node = _node(target)
    return sa.and_(*[has_key(node, key) for key in value])


def json_path_exists(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    node = _node(target)
    path = json_path(target.json_path) + value[1:]
    found = sa.func.json_type(target.expr, sa.literal(path, sa.Text)).is_not(None)
    return _present(node, found)


def all_(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    for item in value:
        scalar_kind(item, target)  # JSON holds no dates, UUIDs ...: refused, not compared
    node = _node(target)
    return sa.and_(
        node.type == "array",
        *[_exists(node, lambda e, child, v=item: _scalar_match(child, v)) for item in value],
    )


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register the JSON1 operators and JSON access for ``sqlite``."""
    registry.set_json_access("sqlite", SqliteJson())
    for op, function in {
        Operator.JSON_CONTAINS: json_contains,
        Operator.JSON_CONTAINED_BY: json_contained_by,
        Operator.JSON_HAS_KEY: json_has_key,
        Operator.JSON_HAS_ANY: json_has_any,
        Operator.JSON_HAS_ALL: json_has_all,
        Operator.JSON_PATH_EXISTS: json_path_exists,
        Operator.ALL: all_,
    }.items():
        registry.add(op, function, dialect="sqlite")
