"""Operators every dialect compiles the same way (portable SQLAlchemy Core).

LIKE-family operators use ``\\`` as the escape character; ``contains`` / ``startswith`` /
``endswith`` escape ``%``, ``_`` and ``\\`` in the user's text so it matches literally.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidSpecificationError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import (
    CompileContext,
    Target,
    is_text,
    scalar_kind,
)
from cqrs_ddd_specifications import Operator
from cqrs_ddd_specifications.text import escape_like

from .coercion import coerce
from .registry import SQLAlchemyOperatorRegistry

__all__ = ["ESCAPE", "register"]

ESCAPE = "\\"


def _operand(ctx: CompileContext, target: Target, value: Any) -> tuple[ColumnElement[Any], Any]:
    if target.is_json:
        return ctx.scalar(target, scalar_kind(value, target)), value
    return target.expr, coerce(target, value)


def _operands(
    ctx: CompileContext, target: Target, values: list[Any]
) -> tuple[ColumnElement[Any], list[Any]]:
    if not target.is_json:
        return target.expr, [coerce(target, v) for v in values]
    kinds = {scalar_kind(v, target) for v in values}
    if len(kinds) > 1:
        raise InvalidValueError("JSON comparisons need values of one kind", path=target.path)
    kind = kinds.pop() if kinds else "str"
    return ctx.scalar(target, kind), values


def _text(ctx: CompileContext, target: Target) -> ColumnElement[Any]:
    if not is_text(target):
        raise InvalidValueError(
            f"{target.name}: string operators need a text field", path=target.path
        )
    return ctx.scalar(target, "str")


def eq(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    operand, value = _operand(ctx, target, value)
    result: ColumnElement[bool] = operand == value
    return result


def gt(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    operand, value = _operand(ctx, target, value)
    result: ColumnElement[bool] = operand > value
    return result


def lt(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    operand, value = _operand(ctx, target, value)
    result: ColumnElement[bool] = operand < value
    return result


def gte(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    operand, value = _operand(ctx, target, value)
    result: ColumnElement[bool] = operand >= value
    return result


def lte(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    operand, value = _operand(ctx, target, value)
    result: ColumnElement[bool] = operand <= value
    return result


def in_(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    if not value:
        return sa.false()
    operand, values = _operands(ctx, target, list(value))
    return operand.in_(values)


def between(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    operand, (low, high) = _operands(ctx, target, list(value))
    return operand.between(low, high)


def _pattern(target: Target, value: Any) -> Any:
    # A user pattern ending in a lone escape character is invalid SQL on PostgreSQL (22025):
    # refuse it at compile time instead of failing in the driver.
    if isinstance(value, str) and (len(value) - len(value.rstrip(ESCAPE))) % 2 == 1:
        raise InvalidValueError(
            f"{target.name}: a LIKE pattern must not end with the escape character {ESCAPE!r}",
            path=target.path,
        )
    return value


def like(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _text(ctx, target).like(_pattern(target, value), escape=ESCAPE)


def ilike(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _text(ctx, target).ilike(_pattern(target, value), escape=ESCAPE)


def contains(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return like(ctx, target, f"%{escape_like(value)}%")


def icontains(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return ilike(ctx, target, f"%{escape_like(value)}%")


def startswith(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return like(ctx, target, f"{escape_like(value)}%")


def istartswith(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return ilike(ctx, target, f"{escape_like(value)}%")


def endswith(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return like(ctx, target, f"%{escape_like(value)}")


def iendswith(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return ilike(ctx, target, f"%{escape_like(value)}")


def regex(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _text(ctx, target).regexp_match(value)


def iregex(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _text(ctx, target).regexp_match(value, flags="i")


def is_null(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    if target.is_json:
        return ctx.json(target).is_null(target.expr, target.json_path)
    return target.expr.is_(None)


def is_empty(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    if target.is_json:
        return ctx.json(target).is_empty(target.expr, target.json_path)
    if is_text(target) and not target.is_json:
        return sa.or_(target.expr.is_(None), target.expr == "")
    return target.expr.is_(None)


def unsupported(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    raise InvalidSpecificationError(
        f"{target.name}: this operator needs a JSON field, or a path through a relationship",
        path=target.path,
    )


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register the portable operators on ``registry``."""
    for op, function in {
        Operator.EQ: eq,
        Operator.GT: gt,
        Operator.LT: lt,
        Operator.GTE: gte,
        Operator.LTE: lte,
        Operator.IN: in_,
        Operator.BETWEEN: between,
        Operator.LIKE: like,
        Operator.ILIKE: ilike,
        Operator.CONTAINS: contains,
        Operator.ICONTAINS: icontains,
        Operator.STARTSWITH: startswith,
        Operator.ISTARTSWITH: istartswith,
        Operator.ENDSWITH: endswith,
        Operator.IENDSWITH: iendswith,
        Operator.REGEX: regex,
        Operator.IREGEX: iregex,
        Operator.IS_NULL: is_null,
        Operator.IS_EMPTY: is_empty,
        Operator.ALL: unsupported,
    }.items():
        registry.add(op, function)
