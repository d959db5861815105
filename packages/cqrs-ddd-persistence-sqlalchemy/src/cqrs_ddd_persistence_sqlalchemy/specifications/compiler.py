"""``build_sqla_filter``: a specification to one SQLAlchemy boolean expression.

The compilation is pure SQL (no Python post-filter). NOTs are pushed down to the leaves, so
positive leaves keep their plain, index-friendly form (``total > :v``) and negated leaves get the
two-valued form that keeps NULLs (``status IS NULL OR status != :v``): every leaf is true or false,
exactly as in the in-memory evaluator.

Leaves through relationships become ``EXISTS`` subqueries (``rel.any()`` / ``rel.has()``); leaves
into JSON columns read the key path with the dialect's JSON functions.

Dialect: without ``dialect=``, dialect-specific leaves are compiled when the statement is compiled
(see :mod:`.deferred`) and make the statement uncacheable (SQLAlchemy compiles it again on every
execution); with ``dialect="postgresql"`` / ``"sqlite"`` they are built at once and the statement
goes through SQLAlchemy's compiled cache like a hand-written one (values are bound parameters,
so specifications of one shape share one compiled form). Pass the dialect of the session the
statement runs on whenever it is known (the repository and the projection store do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_specifications import (
    AndSpecification,
    Condition,
    NotSpecification,
    Operator,
    OrSpecification,
    Specification,
)
from cqrs_ddd_specifications.operators import NEGATIONS
from cqrs_ddd_specifications.specification import DEFAULT_LIMITS, Limits

from .applicability import check_operator
from .deferred import DialectPredicate, Parenthesized
from .fields import Hooks, Resolved, resolve_field
from .registry import SQLAlchemyOperatorRegistry
from .target import CompileContext, Target

__all__ = ["build_sqla_filter"]

#: Operators whose positive predicate is already two-valued (never NULL).
_NULL_SAFE = frozenset({Operator.IS_NULL, Operator.IS_EMPTY})


def build_sqla_filter(
    model: type[Any],
    spec: Specification | Mapping[str, Any],
    hooks: Hooks | None = None,
    *,
    registry: SQLAlchemyOperatorRegistry | None = None,
    dialect: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ColumnElement[bool]:
    """Compile ``spec`` (a specification or its JSON AST) against the mapped class ``model``.

    Args:
        model: the mapped (declarative) class queried.
        spec: a :class:`Specification` or its ``to_dict()`` form.
        hooks: resolution hooks for custom fields (see :mod:`.fields`).
        registry: operator registry (default: :meth:`SQLAlchemyOperatorRegistry.default`).
        dialect: the dialect name, to build dialect-specific SQL now instead of at compile time.
        limits: nesting/size limits applied to dict input.

    Raises:
        SpecificationError: unknown field/operator, bad value, or unsupported operator.

    Example:
        >>> stmt = select(OrderModel).where(build_sqla_filter(OrderModel, spec.to_dict()))
    """
    if isinstance(spec, Mapping):
        spec = Specification.from_dict(spec, limits=limits)
    elif not isinstance(spec, Specification):
        raise InvalidSpecificationError(
            f"expected a specification or its dict form, got {type(spec).__name__}"
        )
    walker = _Walker(model, hooks, registry or SQLAlchemyOperatorRegistry.default(), dialect)
    return walker.node(spec, negate=False, depth=1, limit=limits.max_depth)


class _Walker:
    def __init__(
        self,
        model: type[Any],
        hooks: Hooks | None,
        registry: SQLAlchemyOperatorRegistry,
        dialect: str | None,
    ) -> None:
        self.model = model
        self.hooks = hooks
        self.registry = registry
        self.dialect = dialect
        self._contexts: dict[str, CompileContext] = {}

    def context(self, dialect: str) -> CompileContext:
        ctx = self._contexts.get(dialect)
        if ctx is None:
            ctx = self._contexts[dialect] = CompileContext(dialect, self.registry)
        return ctx

    def node(
        self, spec: Specification, *, negate: bool, depth: int, limit: int
    ) -> ColumnElement[bool]:
        if depth > limit:
            raise InvalidSpecificationError(f"specification nested deeper than {limit} levels")
        if isinstance(spec, Condition):
            return self.leaf(spec, negate=negate)
        if isinstance(spec, NotSpecification):
            return self.node(spec.condition, negate=not negate, depth=depth + 1, limit=limit)
        if isinstance(spec, AndSpecification | OrSpecification):
            parts = [
                self.node(c, negate=negate, depth=depth + 1, limit=limit) for c in spec.conditions
            ]
            conjunction = isinstance(spec, AndSpecification) != negate
            return _balanced(sa.and_ if conjunction else sa.or_, parts)
        raise InvalidSpecificationError(f"cannot compile {type(spec).__name__}")

    def leaf(self, cond: Condition, *, negate: bool) -> ColumnElement[bool]:
        resolved = resolve_field(self.model, cond.attr, self.hooks)
        check_operator(cond.op, resolved.target, through_relationship=bool(resolved.hops))
        op, value = cond.op, cond.val
        positive = NEGATIONS.get(op)
        leaf_negated = positive is not None
        if positive is not None:
            op = positive
        if op is Operator.EQ and value is None:
            op = Operator.IS_NULL
        if resolved.hops:
            if cond.op is Operator.ALL:
                parts = [
                    self.leaf(Condition(cond.attr, Operator.EQ, item), negate=False)
                    for item in value
                ]
                combined = sa.and_(*parts)
                return sa.not_(combined) if negate else combined
            inner = self.predicate(resolved.target, op, value, negated=leaf_negated, negate=False)
            exists = _through(resolved, inner)
            return sa.not_(exists) if negate else exists
        return self.predicate(resolved.target, op, value, negated=leaf_negated, negate=negate)

    def predicate(
        self, target: Target, op: Operator, value: Any, *, negated: bool, negate: bool
    ) -> ColumnElement[bool]:
        def build(dialect: str) -> ColumnElement[bool]:
            raw = self.registry.lookup(op, dialect)(self.context(dialect), target, value)
            return _polarity(target, op, raw, negated=negated, negate=negate)

        if self.dialect is not None:
            return build(self.dialect)
        if self.registry.is_portable(op) and not target.is_json:
            return build("default")
        # validate now (unknown-operator or bad-value errors surface at build time)
        build("postgresql")
        return DialectPredicate(build, target.expr)


#: SQLite parses ``a OR b OR ...`` into a left-deep tree limited to 1000 levels: wide groups are
#: emitted as nested, parenthesised chunks of this size.
_CHUNK = 64


def _balanced(
    combine: Callable[..., ColumnElement[bool]], parts: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    while len(parts) > _CHUNK:
        parts = [
            Parenthesized(combine(*parts[i : i + _CHUNK])) for i in range(0, len(parts), _CHUNK)
        ]
    return combine(*parts)


def _polarity(
    target: Target, op: Operator, raw: ColumnElement[bool], *, negated: bool, negate: bool
) -> ColumnElement[bool]:
    """Shape a positive predicate for the leaf's operator (``negated``) and context (``negate``).

    A path into a NULL JSON column reaches no value: the leaf (whatever its operator) is false,
    so its negation by an enclosing ``not`` is true.
    """
    if target.json_path:
        body = sa.not_(sa.func.coalesce(raw, sa.false())) if negated else raw
        if not negate:
            return sa.and_(target.expr.is_not(None), body)
        flipped = (
            sa.func.coalesce(raw, sa.false())
            if negated
            else sa.not_(sa.func.coalesce(raw, sa.false()))
        )
        return sa.or_(target.expr.is_(None), flipped)
    negated = negated != negate
    if not negated:
        return raw
    if op in _NULL_SAFE:
        return sa.not_(raw)
    if target.model is not None and target.info is not None and not target.is_json:
        return sa.or_(target.expr.is_(None), sa.not_(raw))
    return sa.not_(sa.func.coalesce(raw, sa.false()))


def _through(resolved: Resolved, inner: ColumnElement[bool]) -> ColumnElement[bool]:
    expr = inner
    for owner, relationship in reversed(resolved.hops):
        attribute = getattr(owner, relationship.key)
        expr = attribute.any(expr) if relationship.uselist else attribute.has(expr)
    return expr
