"""The operator registry: the portable operators, and overrides per operator and dialect.

A compile function is found, for an operator on a dialect, in this order:

1. an override registered on the registry for that dialect
   (``registry.add(op, fn, dialect="sqlite")``);
2. the dialect's own operator: each dialect's ``DialectSupport.spec_operators``
   (``dialects/postgresql/specs/``, ``dialects/sqlite/specs/``: JSON, full text, geometry ...);
3. the portable one registered without a dialect (``registry.add(op, fn)``; the default registry
   holds :mod:`.generic`).

JSON fields are read through the dialect's ``json_access`` unless the registry overrides it
(``set_json_access``). Operator functions receive a :class:`CompileContext`, the resolved
:class:`Target` and the validated value, and return the *positive* predicate; negation and NULL
handling are the compiler's job.

A dialect is named, where users name one, by SQLAlchemy's dialect name (``"postgresql"``,
``"sqlite"``): the name is resolved once, by the dialects package, to its ``DialectSupport``,
which is what the registry is keyed by (passing the ``DialectSupport`` works too).

Example:
    >>> registry = SQLAlchemyOperatorRegistry.default().copy()
    >>> @registry.register(Operator.EQ, dialect="sqlite")
    ... def _eq(ctx, target, value):
    ...     return ctx.scalar(target, "str") == value
"""

from __future__ import annotations

from collections.abc import Callable

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED, DialectSupport, support_named
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import (
    JsonAccess,
    OperatorFn,
    Target,
)
from cqrs_ddd_specifications import Operator

__all__ = ["DialectKey", "JsonAccess", "OperatorFunction", "SQLAlchemyOperatorRegistry", "resolve"]

#: ``function(ctx, target, value) -> positive predicate`` (the kernel's :data:`OperatorFn`).
OperatorFunction = OperatorFn
#: How users name a dialect: SQLAlchemy's dialect name, or the ``DialectSupport`` itself.
DialectKey = str | DialectSupport


def resolve(dialect: DialectKey) -> DialectSupport:
    """The ``DialectSupport`` a user-facing dialect key stands for.

    Raises:
        ConfigurationError: a name the library supports no dialect of.
    """
    return support_named(dialect) if isinstance(dialect, str) else dialect


def _specialised() -> frozenset[Operator]:
    """Operators some supported dialect compiles its own way."""
    return frozenset(op for support in SUPPORTED.values() for op in support.spec_operators)


class SQLAlchemyOperatorRegistry:
    """Portable operator compile functions, plus overrides per (operator, dialect) and
    per-dialect JSON access overrides; each dialect's own operators come from the dialect."""

    _default: SQLAlchemyOperatorRegistry | None = None

    def __init__(self, *, fts_config: str = "english") -> None:
        self._functions: dict[Operator, OperatorFunction] = {}
        self._overrides: dict[tuple[Operator, DialectSupport], OperatorFunction] = {}
        self._json: dict[DialectSupport, JsonAccess] = {}
        self._portable: dict[Operator, bool] = {}
        self.fts_config = fts_config

    @classmethod
    def default(cls) -> SQLAlchemyOperatorRegistry:
        """The shared registry: the generic operators (dialects bring their own)."""
        if cls._default is None:
            from . import generic

            registry = cls()
            generic.register(registry)
            cls._default = registry
        return cls._default

    def copy(self, *, fts_config: str | None = None) -> SQLAlchemyOperatorRegistry:
        """An independent copy to extend or override without touching the original."""
        clone = type(self)(fts_config=fts_config or self.fts_config)
        clone._functions = dict(self._functions)
        clone._overrides = dict(self._overrides)
        clone._json = dict(self._json)
        return clone

    def register(
        self, op: Operator, dialect: DialectKey | None = None
    ) -> Callable[[OperatorFunction], OperatorFunction]:
        """Decorator registering (or overriding) the compile function of ``op``."""

        def decorate(function: OperatorFunction) -> OperatorFunction:
            self.add(op, function, dialect=dialect)
            return function

        return decorate

    def add(
        self, op: Operator, function: OperatorFunction, *, dialect: DialectKey | None = None
    ) -> None:
        """Register (or override) ``function`` for ``op`` on ``dialect`` (None: every dialect
        that has no operator of its own for ``op``).

        Raises:
            TypeError: ``op`` is not an :class:`Operator` member.
            ConfigurationError: ``dialect`` names no dialect the library supports.
        """
        if not isinstance(op, Operator):
            raise TypeError("operators are registered by Operator member")
        if dialect is None:
            self._functions[op] = function
        else:
            self._overrides[(op, resolve(dialect))] = function
        self._portable.clear()

    def set_json_access(self, dialect: DialectKey, access: JsonAccess) -> None:
        """Read JSON documents on ``dialect`` with ``access`` instead of the dialect's own."""
        self._json[resolve(dialect)] = access

    def is_portable(self, op: Operator) -> bool:
        """Whether ``op`` compiles the same way on every dialect (no dialect operator and no
        dialect override)."""
        portable = self._portable.get(op)
        if portable is None:  # memoised per operator; add() forgets the answers
            portable = self._portable[op] = (
                op in self._functions
                and op not in _specialised()
                and not any(key_op is op for key_op, _ in self._overrides)
            )
        return portable

    def find(self, op: Operator, dialect: DialectSupport | None) -> OperatorFunction | None:
        """The function compiling ``op`` on ``dialect`` (``None``: portably), if any."""
        if dialect is not None:
            function = self._overrides.get((op, dialect)) or dialect.spec_operators.get(op)
            if function is not None:
                return function
        return self._functions.get(op)

    def lookup(self, op: Operator, dialect: DialectSupport | None) -> OperatorFunction:
        """The function compiling ``op`` on ``dialect`` (``None``: portably).

        Raises:
            InvalidSpecificationError: no function compiles ``op`` there.
        """
        function = self.find(op, dialect)
        if function is None:
            support = dialect
            where = f"the {support.name!r} dialect" if support is not None else "every dialect"
            raise InvalidSpecificationError(f"operator {op.value!r} is not supported on {where}")
        return function

    def json_access(self, dialect: DialectSupport | None, target: Target) -> JsonAccess:
        """The JSON reader of ``dialect``.

        Raises:
            InvalidSpecificationError: no dialect (JSON access is dialect-specific).
        """
        if dialect is None:
            raise InvalidSpecificationError(
                "JSON fields need a dialect to be compiled for", path=target.path
            )
        return self._json.get(dialect) or dialect.json_access
