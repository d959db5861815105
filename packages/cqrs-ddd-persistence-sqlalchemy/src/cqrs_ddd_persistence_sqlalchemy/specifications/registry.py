"""The operator registry: compile functions keyed by :class:`Operator` and dialect name.

A function registered for dialect ``None`` is generic (portable SQLAlchemy Core); one registered
for ``"postgresql"`` or ``"sqlite"`` overrides it on that dialect. Operator functions receive a
:class:`CompileContext`, the resolved :class:`Target` and the validated value, and return the
*positive* predicate; negation and NULL handling are the compiler's job.

Example:
    >>> registry = SQLAlchemyOperatorRegistry.default().copy()
    >>> @registry.register(Operator.EQ, dialect="sqlite")
    ... def _eq(ctx, target, value):
    ...     return ctx.scalar(target, "str") == value
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_specifications import Operator

from .target import CompileContext, ScalarKind, Target

__all__ = ["JsonAccess", "OperatorFunction", "SQLAlchemyOperatorRegistry"]

OperatorFunction = Callable[[CompileContext, Target, Any], ColumnElement[bool]]


class JsonAccess(Protocol):
    """How a dialect reads inside JSON documents."""

    def scalar(
        self, column: ColumnElement[Any], keys: Sequence[str], kind: ScalarKind
    ) -> ColumnElement[Any]:
        """The value at ``keys`` if it is a JSON value of ``kind``, else NULL."""
        ...

    def is_null(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        """Missing, SQL NULL or JSON ``null`` at ``keys``."""
        ...

    def is_empty(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        """Null (as above), ``""``, ``[]`` or ``{}`` at ``keys``."""
        ...


class SQLAlchemyOperatorRegistry:
    """Operator compile functions per (operator, dialect), plus per-dialect JSON access."""

    _default: SQLAlchemyOperatorRegistry | None = None

    def __init__(self, *, fts_config: str = "english") -> None:
        self._functions: dict[tuple[Operator, str | None], OperatorFunction] = {}
        self._json: dict[str, JsonAccess] = {}
        self._portable: dict[Operator, bool] = {}
        self.fts_config = fts_config

    @classmethod
    def default(cls) -> SQLAlchemyOperatorRegistry:
        """The shared registry with the generic, PostgreSQL and SQLite operators."""
        if cls._default is None:
            from . import generic, postgres, sqlite

            registry = cls()
            generic.register(registry)
            postgres.register(registry)
            sqlite.register(registry)
            cls._default = registry
        return cls._default

    def copy(self, *, fts_config: str | None = None) -> SQLAlchemyOperatorRegistry:
        """An independent copy to extend or override without touching the original."""
        clone = type(self)(fts_config=fts_config or self.fts_config)
        clone._functions = dict(self._functions)
        clone._json = dict(self._json)
        return clone

    def register(
        self, op: Operator, dialect: str | None = None
    ) -> Callable[[OperatorFunction], OperatorFunction]:
        """Decorator registering (or overriding) the compile function of ``op``."""

        def decorate(function: OperatorFunction) -> OperatorFunction:
            self.add(op, function, dialect=dialect)
            return function

        return decorate

    def add(self, op: Operator, function: OperatorFunction, *, dialect: str | None = None) -> None:
        """Register (or override) ``function`` for ``op`` on ``dialect`` (None: every dialect)."""
        if not isinstance(op, Operator):
            raise TypeError("operators are registered by Operator member")
        self._functions[(op, dialect)] = function
        self._portable.clear()

    def set_json_access(self, dialect: str, access: JsonAccess) -> None:
        """Register how ``dialect`` reads inside JSON documents."""
        self._json[dialect] = access

    def is_portable(self, op: Operator) -> bool:
        """Whether ``op`` compiles the same way on every dialect (no dialect overrides)."""
        portable = self._portable.get(op)
        if portable is None:  # memoised per operator; add() forgets the answers
            portable = self._portable[op] = (op, None) in self._functions and not any(
                key_op is op and dialect is not None for key_op, dialect in self._functions
            )
        return portable

    def lookup(self, op: Operator, dialect: str) -> OperatorFunction:
        """The function compiling ``op`` on ``dialect``."""
        function = self._functions.get((op, dialect)) or self._functions.get((op, None))
        if function is None:
            raise InvalidSpecificationError(
                f"operator {op.value!r} is not supported on the {dialect!r} dialect"
            )
        return function

    def json_access(self, dialect: str, target: Target) -> JsonAccess:
        """The JSON reader of ``dialect``."""
        access = self._json.get(dialect)
        if access is None:
            raise InvalidSpecificationError(
                f"JSON fields are not supported on the {dialect!r} dialect", path=target.path
            )
        return access
