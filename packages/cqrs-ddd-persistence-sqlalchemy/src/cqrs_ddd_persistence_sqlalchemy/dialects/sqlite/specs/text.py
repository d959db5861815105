"""Case-sensitive LIKE on SQLite.

SQLite's ``LIKE`` ignores ASCII case, so ``like`` / ``not_like`` / ``contains`` / ``startswith`` /
``endswith`` compile to ``GLOB`` with the pattern translated (``%`` to ``*``, ``_`` to ``?``, GLOB
metacharacters in literal text bracketed). The pattern is a bound parameter.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import (
    CompileContext,
    OperatorFn,
    Target,
    is_text,
)
from cqrs_ddd_specifications import Operator
from cqrs_ddd_specifications.text import escape_like

__all__ = ["OPERATORS", "like_to_glob"]


def like_to_glob(pattern: str, escape: str = "\\") -> str:
    """Translate a LIKE pattern (backslash escapes) to an equivalent GLOB pattern."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            char = next(chars, escape)
            out.append(f"[{char}]" if char in "*?[" else char)
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


def _glob(ctx: CompileContext, target: Target, pattern: str) -> ColumnElement[bool]:
    if not is_text(target):
        raise InvalidValueError(
            f"{target.name}: string operators need a text field", path=target.path
        )
    operand = ctx.scalar(target, "str")
    return operand.op("GLOB", return_type=sa.Boolean)(sa.literal(like_to_glob(pattern), sa.Text))


def like(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _glob(ctx, target, value)


def contains(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _glob(ctx, target, f"%{escape_like(value)}%")


def startswith(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _glob(ctx, target, f"{escape_like(value)}%")


def endswith(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _glob(ctx, target, f"%{escape_like(value)}")


def iregex(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    # SQLite's REGEXP is Python's re (registered by SQLAlchemy's pysqlite dialects)
    operand = ctx.scalar(target, "str")
    return operand.regexp_match(sa.literal(f"(?i){value}", sa.Text))


#: Case-sensitive LIKE-family operators (GLOB) and ``iregex`` on SQLite.
OPERATORS: dict[Operator, OperatorFn] = {
    Operator.LIKE: like,
    Operator.CONTAINS: contains,
    Operator.STARTSWITH: startswith,
    Operator.ENDSWITH: endswith,
    Operator.IREGEX: iregex,
}
