"""PostgreSQL full text search: ``websearch_to_tsquery`` / ``phraseto_tsquery``.

The text-search configuration is ``Column(info={"fts_config": "simple"})`` or the registry's
``fts_config`` (default ``english``). ``Column(info={"tsvector": "search_vector"})`` names a
stored ``tsvector`` attribute of the same model to match instead of ``to_tsvector(column)`` (index
it with GIN). The configuration name is validated and rendered inline (``literal_execute``) so an
expression index ``to_tsvector('english', description)`` can match; the search text is bound.
Unlike the portable model, PostgreSQL stems words and drops stop words (use ``simple`` to avoid
both); ``websearch_to_tsquery`` understands ``"quoted phrases"``, ``or`` and ``-word``.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import (
    CompileContext,
    OperatorFn,
    Target,
    is_text,
)
from cqrs_ddd_specifications import Operator

__all__ = ["OPERATORS"]

_CONFIG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _config(ctx: CompileContext, target: Target) -> ColumnElement[Any]:
    name = target.setting("fts_config") or ctx.registry.fts_config
    if not isinstance(name, str) or not _CONFIG.match(name):
        raise ConfigurationError(f"invalid text search configuration {name!r}")
    return sa.cast(sa.bindparam(None, name, type_=sa.String, literal_execute=True), REGCONFIG)


def _vector(ctx: CompileContext, target: Target) -> ColumnElement[Any]:
    stored = target.setting("tsvector")
    if stored:
        if target.model is None or not hasattr(target.model, stored):
            raise ConfigurationError(f"{target.name}: tsvector attribute {stored!r} not found")
        vector: ColumnElement[Any] = getattr(target.model, stored).expression
        return vector
    if not is_text(target):
        raise ConfigurationError(f"{target.name}: full text search needs a text field")
    return sa.func.to_tsvector(_config(ctx, target), ctx.scalar(target, "str"), type_=TSVECTOR)


def fts(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    query = sa.func.websearch_to_tsquery(_config(ctx, target), sa.literal(value, sa.Text))
    return _vector(ctx, target).op("@@", return_type=sa.Boolean)(query)


def fts_phrase(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    query = sa.func.phraseto_tsquery(_config(ctx, target), sa.literal(value, sa.Text))
    return _vector(ctx, target).op("@@", return_type=sa.Boolean)(query)


#: The full text operators on PostgreSQL.
OPERATORS: dict[Operator, OperatorFn] = {Operator.FTS: fts, Operator.FTS_PHRASE: fts_phrase}
