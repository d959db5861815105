"""Which operators apply to which kinds of field, checked for every leaf before SQL is built.

A field's :data:`FieldKind` comes from its column type (``python_type``, JSON, GeoAlchemy2's
``geometry`` / ``geography``). :data:`RULES` gives, per :class:`Operator`, the kinds it applies to;
anything else is refused at compile time with a :class:`SpecificationError`, so an operator never
reaches SQLAlchemy or the database with an operand it cannot take (``>`` on a boolean column,
``contains`` on a number, ``st_within`` on a string, ``@>`` on a date ...).

The value's own shape is checked earlier, when the leaf is built
(:mod:`cqrs_ddd_specifications.values`: e.g. no booleans for ordering operators), and converted
to the column's type by :mod:`.coercion`. Inside JSON, the kind compared is the value's (a JSON
string with a string, a JSON number with a number).

Fields of no known Python type (``untyped``: a ``NullType`` expression from a resolution hook,
``INET``, ``TSVECTOR`` ...) and of other Python types (``other``: ``Interval``, ``LargeBinary``,
``ARRAY``, custom types) keep the comparison and null operators, with their values passed as
given; give a hook expression a type (``sa.type_coerce(expr, sa.String)``) to use the string
operators on it.

Example:
    >>> build_sqla_filter(OrderModel, {"op": ">", "attr": "paid", "val": 1})
    Traceback (most recent call last):
    cqrs_ddd_core.errors.InvalidValueError: paid: '>' does not apply to a boolean field; ...
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args

from cqrs_ddd_core.errors import InvalidSpecificationError, InvalidValueError, SpecificationError
from cqrs_ddd_specifications import Operator
from cqrs_ddd_specifications.operators import (
    FTS_OPERATORS,
    GEOMETRY_OPERATORS,
    JSON_OPERATORS,
    LOGICAL_OPERATORS,
    NULL_OPERATORS,
)

from .target import Target

__all__ = ["RULES", "FieldKind", "Rule", "check_operator", "field_kind"]

FieldKind = Literal[
    "text", "number", "boolean", "date/time", "UUID", "JSON", "geometry", "other", "untyped"
]

#: GeoAlchemy2 type names (``Geometry.name``) of spatial columns; no import of GeoAlchemy2 needed.
_SPATIAL_TYPE_NAMES = frozenset({"geometry", "geography"})
_BY_PYTHON_TYPE: tuple[tuple[type | tuple[type, ...], FieldKind], ...] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    ((int, float, Decimal), "number"),
    ((str, enum.Enum), "text"),
    ((dt.datetime, dt.date, dt.time), "date/time"),
    (uuid.UUID, "UUID"),
)


def field_kind(target: Target) -> FieldKind:
    """The kind of the resolved field ``target``."""
    if target.is_json:
        return "JSON"
    type_ = target.type
    if getattr(type_, "name", None) in _SPATIAL_TYPE_NAMES:
        return "geometry"
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return "untyped"
    if python_type is object:
        return "untyped"
    for types, kind in _BY_PYTHON_TYPE:
        if isinstance(python_type, type) and issubclass(python_type, types):
            return kind
    return "other"


@dataclass(frozen=True)
class Rule:
    """The field kinds an operator applies to, and how a refusal is reported."""

    kinds: frozenset[FieldKind]
    needs: str
    error: type[SpecificationError] = InvalidValueError


_EVERY: frozenset[FieldKind] = frozenset(get_args(FieldKind))
_COMPARABLE = _EVERY - {"geometry"}
_ORDERED = _COMPARABLE - {"boolean"}
_TEXT: frozenset[FieldKind] = frozenset({"text", "JSON"})

_COMPARE = Rule(_COMPARABLE, "a non-geometry field (use geom_equals for geometries)")
_ORDER = Rule(_ORDERED, "a text, number, date/time, UUID or JSON field")
_STRING = Rule(_TEXT, "a text or JSON field")
_NULL = Rule(_EVERY, "any field")
_JSON = Rule(frozenset({"JSON"}), "a JSON field", InvalidSpecificationError)
_GEOMETRY = Rule(frozenset({"geometry"}), "a geometry field", InvalidSpecificationError)
_ALL = Rule(
    frozenset({"JSON"}), "a JSON field, or a path through a relationship", InvalidSpecificationError
)
_STRING_OPERATORS = (
    Operator.LIKE,
    Operator.NOT_LIKE,
    Operator.ILIKE,
    Operator.CONTAINS,
    Operator.ICONTAINS,
    Operator.STARTSWITH,
    Operator.ISTARTSWITH,
    Operator.ENDSWITH,
    Operator.IENDSWITH,
    Operator.REGEX,
    Operator.IREGEX,
    *FTS_OPERATORS,
)

#: The kinds each leaf operator applies to (``all`` also applies to any comparable field reached
#: through a relationship: see :func:`check_operator`).
RULES: dict[Operator, Rule] = {
    **dict.fromkeys((Operator.EQ, Operator.NE, Operator.IN, Operator.NOT_IN), _COMPARE),
    **dict.fromkeys(
        (
            Operator.GT,
            Operator.LT,
            Operator.GTE,
            Operator.LTE,
            Operator.BETWEEN,
            Operator.NOT_BETWEEN,
        ),
        _ORDER,
    ),
    Operator.ALL: _ALL,
    **dict.fromkeys(_STRING_OPERATORS, _STRING),
    **dict.fromkeys(NULL_OPERATORS, _NULL),
    **dict.fromkeys(JSON_OPERATORS, _JSON),
    **dict.fromkeys(GEOMETRY_OPERATORS, _GEOMETRY),
}

_MISSING = set(Operator) - LOGICAL_OPERATORS - set(RULES)
if _MISSING:  # pragma: no cover - a new operator must be given a rule
    raise RuntimeError(f"no applicability rule for {sorted(op.name for op in _MISSING)}")


def check_operator(op: Operator, target: Target, *, through_relationship: bool = False) -> None:
    """Raise unless ``op`` applies to the field ``target``.

    Args:
        op: the leaf's operator (negative operators included).
        target: the resolved field.
        through_relationship: the field is reached through a relationship, where ``all``
            means "every value is among the related rows' values" and applies as ``=`` does.

    Raises:
        SpecificationError: the operator does not apply to the field's kind (the rule's error
            class: ``InvalidValueError``, or ``InvalidSpecificationError`` for operators that need
            a JSON or geometry field).
    """
    rule = RULES[Operator.EQ if op is Operator.ALL and through_relationship else op]
    kind = field_kind(target)
    if kind not in rule.kinds:
        raise rule.error(
            f"{target.name}: {op.value!r} does not apply to a {kind} field; it needs {rule.needs}",
            path=target.path,
        )
