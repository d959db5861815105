"""The specification AST and its JSON form.

Leaves are ``{"op": <operator>, "attr": <field path>, "val": <value>}``; groups are
``{"op": "and" | "or", "conditions": [...]}`` and ``{"op": "not", "condition": {...}}`` (``not``
also accepts a one-element ``"conditions"`` list). Field paths are dotted (``customer.name``
through a relationship, ``metadata.tags`` into a JSON column).

Semantics are two-valued: a leaf is true or false, never unknown. A leaf over a missing / NULL
value is false, except for the negative operators (``!=``, ``not_in``, ``not_between``,
``not_like``, ``is_not_null``, ``is_not_empty``), each of which is exactly the negation of its
positive operator and therefore *matches* NULLs; ``~spec`` likewise matches every object
``spec`` does not. The in-memory evaluator and every SQL compiler implement the same rule.

Example:
    >>> spec = Condition("status", "eq", "active") & Condition("total", "gt", 100)
    >>> spec.to_dict()["op"]
    'and'
    >>> Specification.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cqrs_ddd_core.errors import FieldNotFoundError, InvalidSpecificationError

from .codec import decode_value, dumps, loads
from .operators import (
    LOGICAL_OPERATORS,
    NEGATIONS,
    NULL_OPERATORS,
    Operator,
    resolve_operator,
)
from .values import check_text, normalize_value

__all__ = [
    "DEFAULT_LIMITS",
    "AndSpecification",
    "Condition",
    "Limits",
    "NotSpecification",
    "OrSpecification",
    "Specification",
]

_POSITIVE_TO_NEGATIVE = {pos: neg for neg, pos in NEGATIONS.items()}


@dataclass(frozen=True)
class Limits:
    """Bounds on the size of a specification accepted from outside."""

    max_depth: int = 64
    max_nodes: int = 100_000


DEFAULT_LIMITS = Limits()


class Specification:
    """Base class of all specification nodes; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON AST of this specification (Python values kept as they are)."""
        raise NotImplementedError

    def to_json(self) -> str:
        """Return the JSON text of this specification (datetimes, UUIDs, Decimals tagged)."""
        return dumps(self.to_dict())

    def fields(self) -> Iterator[str]:
        """Yield every field path this specification refers to."""
        raise NotImplementedError

    def is_satisfied_by(self, candidate: Any) -> bool:
        """Whether ``candidate`` (an object with attributes, or a mapping) satisfies this."""
        from .evaluator import evaluate

        return evaluate(self, candidate)

    def __and__(self, other: Specification) -> Specification:
        return AndSpecification.of(self, other)

    def __or__(self, other: Specification) -> Specification:
        return OrSpecification.of(self, other)

    def __invert__(self) -> Specification:
        return NotSpecification(self)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        allowed_fields: Iterable[str] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Specification:
        """Parse and validate a JSON AST.

        Args:
            data: the AST (tagged datetime/UUID/Decimal values are decoded).
            allowed_fields: if given, the only field paths a leaf may name.
            limits: the maximum nesting depth and node count.

        Raises:
            InvalidSpecificationError: a node has the wrong shape, or the tree is too big.
            OperatorNotFoundError: an operator is unknown (with suggestions).
            FieldNotFoundError: a field is not in ``allowed_fields``.
            InvalidValueError: a value has the wrong shape for its operator.
        """
        _check_size(data, limits)
        allowed = None if allowed_fields is None else frozenset(allowed_fields)
        return _parse(data, "$", allowed)

    @classmethod
    def from_json(
        cls,
        text: str | bytes,
        *,
        allowed_fields: Iterable[str] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Specification:
        """Parse JSON text written by :meth:`to_json` (see :meth:`from_dict`)."""
        data = loads(text)
        if not isinstance(data, Mapping):
            raise InvalidSpecificationError("a specification must be a JSON object", path="$")
        return cls.from_dict(data, allowed_fields=allowed_fields, limits=limits)

    def validate_fields(self, allowed_fields: Iterable[str]) -> None:
        """Raise :class:`FieldNotFoundError` if a field is not in ``allowed_fields``."""
        allowed = frozenset(allowed_fields)
        for field in self.fields():
            if field not in allowed:
                raise FieldNotFoundError(field, allowed)


@dataclass(frozen=True, init=False, slots=True)
class Condition(Specification):
    """A leaf: ``attr <op> val``. The value is validated for the operator on construction."""

    attr: str
    op: Operator
    val: Any

    def __init__(self, attr: str, op: str | Operator, val: Any = None, *, path: str = "$") -> None:
        operator = resolve_operator(op, path=path)
        if operator in LOGICAL_OPERATORS:
            raise InvalidSpecificationError(
                f"{operator.value!r} is a group operator, not a leaf operator", path=path
            )
        attr = _check_attr(attr, path)
        value = normalize_value(operator, val, path=path)
        if operator in NULL_OPERATORS:
            if value is False:  # is_null=false means is_not_null, and so on
                operator = NEGATIONS.get(operator) or _POSITIVE_TO_NEGATIVE[operator]
            value = True
        object.__setattr__(self, "attr", attr)
        object.__setattr__(self, "op", operator)
        object.__setattr__(self, "val", value)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op.value, "attr": self.attr, "val": self.val}

    def fields(self) -> Iterator[str]:
        yield self.attr

    def __hash__(self) -> int:
        return hash((self.attr, self.op, repr(self.val)))


def _check_attr(attr: Any, path: str) -> str:
    if not isinstance(attr, str) or not attr.strip():
        raise InvalidSpecificationError("'attr' must be a non-empty string", path=path)
    check_text(attr, path=path, what="attr")
    if any(not part for part in attr.split(".")):
        raise InvalidSpecificationError(f"malformed field path {attr!r}", path=path)
    return attr


class _Group(Specification):
    __slots__ = ("conditions",)
    op: ClassVar[Operator]

    def __init__(self, conditions: Sequence[Specification]) -> None:
        if not conditions:
            raise InvalidSpecificationError(f"{self.op.value!r} needs at least one condition")
        for item in conditions:
            if not isinstance(item, Specification):
                raise InvalidSpecificationError(
                    f"{self.op.value!r} conditions must be specifications, "
                    f"got {type(item).__name__}"
                )
        self.conditions: tuple[Specification, ...] = tuple(conditions)

    @classmethod
    def of(cls, *items: Specification) -> Specification:
        """Combine ``items``, flattening nested groups of the same kind."""
        flat: list[Specification] = []
        for item in items:
            if type(item) is cls:
                flat.extend(item.conditions)
            else:
                flat.append(item)
        return cls(flat)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op.value, "conditions": [c.to_dict() for c in self.conditions]}

    def fields(self) -> Iterator[str]:
        for condition in self.conditions:
            yield from condition.fields()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.conditions == self.conditions

    def __hash__(self) -> int:
        return hash((self.op, self.conditions))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.conditions)!r})"


class AndSpecification(_Group):
    """All conditions hold."""

    __slots__ = ()
    op = Operator.AND


class OrSpecification(_Group):
    """At least one condition holds."""

    __slots__ = ()
    op = Operator.OR


class NotSpecification(Specification):
    """The condition does not hold (NULLs included: see the module docstring)."""

    __slots__ = ("condition",)

    def __init__(self, condition: Specification) -> None:
        if not isinstance(condition, Specification):
            raise InvalidSpecificationError("'not' needs a specification")
        self.condition = condition

    def to_dict(self) -> dict[str, Any]:
        return {"op": Operator.NOT.value, "condition": self.condition.to_dict()}

    def fields(self) -> Iterator[str]:
        return self.condition.fields()

    def __invert__(self) -> Specification:
        return self.condition

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotSpecification) and other.condition == self.condition

    def __hash__(self) -> int:
        return hash((Operator.NOT, self.condition))

    def __repr__(self) -> str:
        return f"NotSpecification({self.condition!r})"


def _check_size(data: Any, limits: Limits) -> None:
    """Walk the raw tree iteratively (no recursion) and enforce the limits."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > limits.max_depth:
            raise InvalidSpecificationError(
                f"specification nested deeper than {limits.max_depth} levels"
            )
        if nodes > limits.max_nodes:
            raise InvalidSpecificationError(f"specification has more than {limits.max_nodes} nodes")
        if isinstance(node, Mapping):
            children = node.get("conditions")
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in children)
            child = node.get("condition")
            if child is not None:
                stack.append((child, depth + 1))


_LEAF_KEYS = frozenset({"op", "attr", "val"})


def _parse(data: Any, path: str, allowed: frozenset[str] | None) -> Specification:
    if not isinstance(data, Mapping):
        raise InvalidSpecificationError(
            f"a specification node must be an object, got {type(data).__name__}", path=path
        )
    if "op" not in data:
        raise InvalidSpecificationError("node has no 'op'", path=path)
    op = resolve_operator(data["op"], path=path)
    if op in (Operator.AND, Operator.OR):
        _only_keys(data, {"op", "conditions"}, path)
        children = data.get("conditions")
        if not isinstance(children, list) or not children:
            raise InvalidSpecificationError(
                f"{op.value!r} needs a non-empty 'conditions' list", path=path
            )
        parsed = [_parse(c, f"{path}.conditions[{i}]", allowed) for i, c in enumerate(children)]
        return AndSpecification(parsed) if op is Operator.AND else OrSpecification(parsed)
    if op is Operator.NOT:
        _only_keys(data, {"op", "condition", "conditions"}, path)
        if "condition" in data and "conditions" not in data:
            return NotSpecification(_parse(data["condition"], f"{path}.condition", allowed))
        children = data.get("conditions")
        if isinstance(children, list) and len(children) == 1 and "condition" not in data:
            return NotSpecification(_parse(children[0], f"{path}.conditions[0]", allowed))
        raise InvalidSpecificationError(
            "'not' needs exactly one 'condition' (or a one-element 'conditions')", path=path
        )
    _only_keys(data, _LEAF_KEYS, path)
    if "attr" not in data:
        raise InvalidSpecificationError("leaf has no 'attr'", path=path)
    attr = data["attr"]
    if allowed is not None and attr not in allowed:
        raise FieldNotFoundError(str(attr), allowed, path=path)
    return Condition(attr, op, decode_value(data.get("val")), path=path)


def _only_keys(data: Mapping[str, Any], keys: Iterable[str], path: str) -> None:
    extra = set(data) - set(keys)
    if extra:
        raise InvalidSpecificationError(
            f"unexpected keys {sorted(map(str, extra))} in {data.get('op')!r} node", path=path
        )
