"""Full text search fallback on SQLite (no FTS5 table needed).

Implements the portable model exactly: the query is split into lower-case ASCII word tokens and
each must occur in ``' ' || lower(column) || ' '`` between non-alphanumeric characters (a bound
GLOB pattern); a phrase must occur with single separators between its words. No stemming, no
websearch syntax (``or``, ``-word`` and quotes are plain words).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.specifications.registry import SQLAlchemyOperatorRegistry
from cqrs_ddd_persistence_sqlalchemy.specifications.target import CompileContext, Target
from cqrs_ddd_specifications import Operator
from cqrs_ddd_specifications.text import tokenize

__all__ = ["register"]

_SEP = "[^a-z0-9]"


def _padded(ctx: CompileContext, target: Target) -> ColumnElement[Any]:
    text = sa.func.lower(ctx.scalar(target, "str"))
    return sa.literal(" ", sa.Text).concat(text).concat(sa.literal(" ", sa.Text))


def _tokens(target: Target, value: str) -> list[str]:
    tokens = tokenize(value)
    if not tokens:
        raise InvalidValueError("search text has no words", path=target.path)
    return tokens


def fts(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    padded = _padded(ctx, target)
    return sa.and_(
        *[
            padded.op("GLOB", return_type=sa.Boolean)(sa.literal(f"*{_SEP}{token}{_SEP}*", sa.Text))
            for token in _tokens(target, value)
        ]
    )


def fts_phrase(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    pattern = f"*{_SEP}" + _SEP.join(_tokens(target, value)) + f"{_SEP}*"
    return _padded(ctx, target).op("GLOB", return_type=sa.Boolean)(sa.literal(pattern, sa.Text))


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register the full text fallback for ``sqlite``."""
    registry.add(Operator.FTS, fts, dialect="sqlite")
    registry.add(Operator.FTS_PHRASE, fts_phrase, dialect="sqlite")
