"""Full text search fallback on SQLite (no FTS5 table needed).

Implements the portable model exactly: the query is split into lower-case ASCII word tokens and
each must occur in ``' ' || lower(column) || ' '`` between non-alphanumeric characters (a bound
GLOB pattern); a phrase must occur with single separators between its words. No stemming, no
websearch syntax (``or``, ``-word`` and quotes are plain words). A query without any such word
(``"%_'"``, ``"日本語"``) matches nothing, as in memory.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_persistence_sqlalchemy.specifications.registry import SQLAlchemyOperatorRegistry
from cqrs_ddd_persistence_sqlalchemy.specifications.target import CompileContext, Target
from cqrs_ddd_specifications import Operator
from cqrs_ddd_specifications.text import tokenize

__all__ = ["register"]

_SEP = "[^a-z0-9]"


def _padded(ctx: CompileContext, target: Target) -> ColumnElement[Any]:
    text = sa.func.lower(ctx.scalar(target, "str"))
    return sa.literal(" ", sa.Text).concat(text).concat(sa.literal(" ", sa.Text))


def fts(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    tokens = tokenize(value)
    if not tokens:
        return sa.false()
    padded = _padded(ctx, target)
    return sa.and_(
        *[
            padded.op("GLOB", return_type=sa.Boolean)(sa.literal(f"*{_SEP}{token}{_SEP}*", sa.Text))
            for token in tokens
        ]
    )


def fts_phrase(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    tokens = tokenize(value)
    if not tokens:
        return sa.false()
    pattern = f"*{_SEP}" + _SEP.join(tokens) + f"{_SEP}*"
    return _padded(ctx, target).op("GLOB", return_type=sa.Boolean)(sa.literal(pattern, sa.Text))


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register the full text fallback for ``sqlite``."""
    registry.add(Operator.FTS, fts, dialect="sqlite")
    registry.add(Operator.FTS_PHRASE, fts_phrase, dialect="sqlite")
