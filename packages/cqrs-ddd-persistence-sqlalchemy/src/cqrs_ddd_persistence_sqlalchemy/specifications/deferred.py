"""A predicate whose SQL is chosen when the statement is compiled for a concrete dialect.

``build_sqla_filter`` without ``dialect=`` wraps dialect-specific leaves (JSON, full text,
geometry, SQLite's case-sensitive LIKE ...) in :class:`DialectPredicate`; when SQLAlchemy compiles
it, the compiler's dialect is resolved to its ``DialectSupport`` (``dialect_for``) and the
function for that dialect produces the SQL. A dialect the library does not support (the default
one of ``str(statement)``) gets the portable form where there is one.
Such statements are not put in SQLAlchemy's compiled cache (``inherit_cache = False``); pass
``dialect=`` to get fully cacheable expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for

__all__ = ["DialectPredicate", "Parenthesized"]


class DialectPredicate(ColumnElement[bool]):
    """A boolean expression produced by ``build(dialect)`` at compile time (``dialect``: the
    ``DialectSupport`` of the compiler's dialect, ``None`` for one the library does not support).
    """

    inherit_cache = False
    type = sa.Boolean()

    def __init__(
        self,
        build: Callable[[DialectSupport | None], ColumnElement[bool]],
        anchor: ColumnElement[Any],
    ) -> None:
        self.build = build
        self.anchor = anchor

    @property
    def _from_objects(self) -> Any:
        return self.anchor._from_objects


@compiles(DialectPredicate)
def _compile(element: DialectPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    try:
        support: DialectSupport | None = dialect_for(compiler.dialect)
    except ConfigurationError:  # e.g. str(statement): SQLAlchemy's default dialect
        support = None
    # parenthesised: the element may sit under NOT or beside OR in the enclosing statement
    return "(" + compiler.process(element.build(support), **kw) + ")"


class Parenthesized(ColumnElement[bool]):
    """A boolean expression always rendered in parentheses (never flattened into its parent).

    SQLAlchemy flattens nested ``or_(or_(...))``; SQLite parses a flat ``a OR b OR ...`` into a
    left-deep tree limited to 1000 levels. Wide groups are therefore emitted as parenthesised
    chunks, keeping the parse tree shallow.
    """

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [("element", InternalTraversal.dp_clauseelement)]

    def __init__(self, element: ColumnElement[bool]) -> None:
        self.element = element

    @property
    def _from_objects(self) -> Any:
        return self.element._from_objects


@compiles(Parenthesized)
def _compile_parenthesized(element: Parenthesized, compiler: SQLCompiler, **kw: Any) -> str:
    return "(" + compiler.process(element.element, **kw) + ")"
