"""In-memory evaluation of specifications against objects or mappings.

Field paths walk attributes (objects) and keys (mappings). A list met on the way from an object is
a to-many relationship: the leaf holds if it holds for *any* element (SQL: ``EXISTS``). ``None``
met before the last step of an object path is a missing related row or a NULL JSON column: the
leaf is false (SQL: no row in ``EXISTS`` / guarded JSON column). Inside a JSON document a missing
key or a non-object yields ``None`` (SQL: ``NULL``). Values of another type than the spec's value
(a JSON string compared with a number, ``True`` with ``1``) never compare equal.

The portable full-text model (``fts``, ``fts_phrase``) is: lower-case ASCII word tokens, every
query word must occur (phrase: consecutively). PostgreSQL adds stemming and stop words unless the
``simple`` text-search configuration is used.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from cqrs_ddd_core.errors import FieldNotFoundError, InvalidSpecificationError, InvalidValueError

from .geometry import to_shape
from .operators import NEGATIONS, Operator
from .specification import (
    DEFAULT_LIMITS,
    AndSpecification,
    Condition,
    Limits,
    NotSpecification,
    OrSpecification,
    Specification,
)
from .text import escape_like, like_to_regex, tokenize

__all__ = ["evaluate", "json_contains", "json_equal"]

_NOTHING = object()


def evaluate(spec: Specification, candidate: Any, *, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Return whether ``candidate`` satisfies ``spec``.

    Example:
        >>> evaluate(Condition("total", "gt", 100), {"total": 150})
        True
    """
    if _depth(spec) > limits.max_depth:
        raise InvalidSpecificationError(f"specification nested deeper than {limits.max_depth}")
    return _eval(spec, candidate)


def _depth(spec: Specification) -> int:
    deepest, stack = 0, [(spec, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, AndSpecification | OrSpecification):
            stack.extend((child, depth + 1) for child in node.conditions)
        elif isinstance(node, NotSpecification):
            stack.append((node.condition, depth + 1))
    return deepest


def _eval(spec: Specification, candidate: Any) -> bool:
    if isinstance(spec, Condition):
        return _leaf(spec, candidate)
    if isinstance(spec, AndSpecification):
        return all(_eval(c, candidate) for c in spec.conditions)
    if isinstance(spec, OrSpecification):
        return any(_eval(c, candidate) for c in spec.conditions)
    if isinstance(spec, NotSpecification):
        return not _eval(spec.condition, candidate)
    raise InvalidSpecificationError(f"cannot evaluate {type(spec).__name__}")


def resolve_path(candidate: Any, path: str) -> list[Any]:
    """Return the values ``path`` reaches in ``candidate`` (see the module docstring)."""
    parts = path.split(".")
    current: list[tuple[Any, bool]] = [(candidate, False)]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        following: list[tuple[Any, bool]] = []
        for value, in_json in current:
            if in_json:
                child = value.get(part) if isinstance(value, Mapping) else None
                following.append((child, True))
                continue
            if value is None:
                continue  # missing related row / NULL JSON column
            if isinstance(value, Mapping):
                child = value.get(part)
            else:
                child = getattr(value, part, _NOTHING)
                if child is _NOTHING:
                    raise FieldNotFoundError(part, _public_attrs(value), model=type(value).__name__)
            if last:
                following.append((child, False))
            elif isinstance(child, Mapping):
                following.append((child, True))
            elif isinstance(child, list | tuple | set | frozenset):
                following.extend((item, False) for item in child)
            else:
                following.append((child, False))
        current = following
    return [value for value, _ in current]


def _public_attrs(value: Any) -> list[str]:
    return [name for name in dir(value) if not name.startswith("_")]


def _leaf(cond: Condition, candidate: Any) -> bool:
    values = resolve_path(candidate, cond.attr)
    positive = NEGATIONS.get(cond.op)
    if positive is not None:
        # the negation is applied per reached value: EXISTS(related row where NOT <positive>)
        return any(not _check(positive, v, cond.val) for v in values)
    if cond.op is Operator.ALL:
        return _all(values, cond.val)
    return any(_check(cond.op, v, cond.val) for v in values)


def _check(op: Operator, value: Any, spec_value: Any) -> bool:
    if op in _NULL_SAFE:
        return _NULL_SAFE[op](value, spec_value)
    if value is None:
        return False
    return _CHECKS[op](value, spec_value)


# -- comparison ----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    if isinstance(value, uuid.UUID):
        return "uuid"
    return type(value).__name__


def _align(value: Any, spec_value: Any) -> tuple[Any, Any] | None:
    """Bring both sides to one type, or return None when they cannot be compared."""
    kind, spec_kind = _kind(value), _kind(spec_value)
    if kind == spec_kind:
        return value, spec_value
    if spec_kind == "str":
        parse: dict[str, Callable[[str], Any]] = {
            "datetime": dt.datetime.fromisoformat,
            "date": dt.date.fromisoformat,
            "time": dt.time.fromisoformat,
            "uuid": uuid.UUID,
        }
        if kind in parse:
            try:
                return value, parse[kind](spec_value)
            except ValueError as exc:
                raise InvalidValueError(f"{spec_value!r} is not a valid {kind}") from exc
    if kind == "str" and spec_kind == "uuid":
        return value, str(spec_value)
    return None


def _eq(value: Any, spec_value: Any) -> bool:
    if spec_value is None:
        return value is None
    if value is None:
        return False
    pair = _align(value, spec_value)
    return pair is not None and bool(pair[0] == pair[1])


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, spec_value: Any) -> bool:
        pair = _align(value, spec_value)
        if pair is None:
            return False
        try:
            return test(*pair)
        except TypeError as exc:  # e.g. aware vs naive datetimes
            raise InvalidValueError(f"cannot compare {value!r} with {spec_value!r}") from exc

    return check


def _in(value: Any, spec_value: Sequence[Any]) -> bool:
    return any(_eq(value, item) for item in spec_value)


def _between(value: Any, bounds: Sequence[Any]) -> bool:
    low, high = bounds
    return _ordered(lambda a, b: a >= b)(value, low) and _ordered(lambda a, b: a <= b)(value, high)


def _all(values: list[Any], spec_value: Sequence[Any]) -> bool:
    if len(values) == 1 and isinstance(values[0], list | tuple):
        pool: Sequence[Any] = values[0]
    else:
        pool = [v for v in values if v is not None]
    return bool(pool) and all(any(json_equal(p, item) for p in pool) for item in spec_value)


# -- strings -------------------------------------------------------------------------------------


def _text(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, spec_value: Any) -> bool:
        return isinstance(value, str) and test(value, spec_value)

    return check


def _like(value: str, pattern: str, *, fold: bool = False) -> bool:
    if fold:
        value, pattern = value.lower(), pattern.lower()
    return like_to_regex(pattern).fullmatch(value) is not None


def _fts(value: str, query: str) -> bool:
    words = set(tokenize(value))
    terms = tokenize(query)
    return bool(terms) and all(term in words for term in terms)


def _phrase(value: str, query: str) -> bool:
    words, terms = tokenize(value), tokenize(query)
    n = len(terms)
    return n > 0 and any(words[i : i + n] == terms for i in range(len(words) - n + 1))


# -- null / empty --------------------------------------------------------------------------------


def _is_empty(value: Any, _: Any) -> bool:
    if value is None or value == "":
        return True
    return isinstance(value, list | tuple | dict | set | frozenset) and len(value) == 0


# -- JSON ----------------------------------------------------------------------------------------


def json_equal(left: Any, right: Any) -> bool:
    """JSON scalar equality: booleans are not numbers, numbers compare by value."""
    if _kind(left) != _kind(right):
        return False
    return bool(left == right)


def json_contains(doc: Any, sub: Any, *, top: bool = True) -> bool:
    """PostgreSQL ``jsonb @>`` semantics (including "a top-level array contains a scalar")."""
    if isinstance(sub, Mapping):
        return isinstance(doc, Mapping) and all(
            key in doc and json_contains(doc[key], item, top=False) for key, item in sub.items()
        )
    if isinstance(sub, list | tuple):
        return isinstance(doc, list | tuple) and all(
            any(json_contains(d, item, top=False) for d in doc) for item in sub
        )
    if isinstance(doc, list | tuple) and top:
        return any(not isinstance(d, Mapping | list | tuple) and json_equal(d, sub) for d in doc)
    if isinstance(doc, Mapping | list | tuple):
        return False
    return json_equal(doc, sub)


def _has_key(doc: Any, key: str) -> bool:
    if isinstance(doc, Mapping):
        return key in doc
    if isinstance(doc, list | tuple):
        return any(isinstance(item, str) and item == key for item in doc)
    return isinstance(doc, str) and doc == key


_PATH_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\."([^"\\]+)"|\[(\d+)\]')


def _path_exists(doc: Any, path: str) -> bool:
    current = doc
    for match in _PATH_STEP.finditer(path[1:]):
        key, quoted, index = match.groups()
        if index is not None:
            if not isinstance(current, list | tuple) or int(index) >= len(current):
                return False
            current = current[int(index)]
        else:
            name = key if key is not None else quoted
            if not isinstance(current, Mapping) or name not in current:
                return False
            current = current[name]
    return True


# -- geometry ------------------------------------------------------------------------------------


def _geo(method: str) -> Callable[[Any, Any], bool]:
    def check(value: Any, spec_value: Any) -> bool:
        return bool(getattr(to_shape(value), method)(to_shape(spec_value)))

    return check


def _bbox(value: Any, spec_value: Any) -> bool:
    import shapely

    a, b = to_shape(value), to_shape(spec_value)
    return bool(shapely.box(*a.bounds).intersects(shapely.box(*b.bounds)))


def _distance(strict: bool) -> Callable[[Any, Any], bool]:
    def check(value: Any, spec_value: Any) -> bool:
        distance = to_shape(value).distance(to_shape(spec_value["geometry"]))
        limit = spec_value["distance"]
        return bool(distance < limit if strict else distance <= limit)

    return check


_NULL_SAFE: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.EQ: _eq,
    Operator.IS_NULL: lambda value, _: value is None,
    Operator.IS_EMPTY: _is_empty,
}

_CHECKS: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.GT: _ordered(lambda a, b: a > b),
    Operator.LT: _ordered(lambda a, b: a < b),
    Operator.GTE: _ordered(lambda a, b: a >= b),
    Operator.LTE: _ordered(lambda a, b: a <= b),
    Operator.IN: _in,
    Operator.BETWEEN: _between,
    Operator.LIKE: _text(_like),
    Operator.ILIKE: _text(lambda v, p: _like(v, p, fold=True)),
    Operator.CONTAINS: _text(lambda v, s: _like(v, f"%{escape_like(s)}%")),
    Operator.ICONTAINS: _text(lambda v, s: _like(v, f"%{escape_like(s)}%", fold=True)),
    Operator.STARTSWITH: _text(lambda v, s: v.startswith(s)),
    Operator.ISTARTSWITH: _text(lambda v, s: v.lower().startswith(s.lower())),
    Operator.ENDSWITH: _text(lambda v, s: v.endswith(s)),
    Operator.IENDSWITH: _text(lambda v, s: v.lower().endswith(s.lower())),
    Operator.REGEX: _text(lambda v, p: re.search(p, v) is not None),
    Operator.IREGEX: _text(lambda v, p: re.search(p, v, re.IGNORECASE) is not None),
    Operator.FTS: _text(_fts),
    Operator.FTS_PHRASE: _text(_phrase),
    Operator.JSON_CONTAINS: lambda doc, sub: json_contains(doc, sub),
    Operator.JSON_CONTAINED_BY: lambda doc, sup: json_contains(sup, doc),
    Operator.JSON_HAS_KEY: _has_key,
    Operator.JSON_HAS_ANY: lambda doc, keys: any(_has_key(doc, k) for k in keys),
    Operator.JSON_HAS_ALL: lambda doc, keys: all(_has_key(doc, k) for k in keys),
    Operator.JSON_PATH_EXISTS: _path_exists,
    Operator.INTERSECTS: _geo("intersects"),
    Operator.WITHIN: _geo("within"),
    Operator.CONTAINS_GEOM: _geo("contains"),
    Operator.TOUCHES: _geo("touches"),
    Operator.CROSSES: _geo("crosses"),
    Operator.OVERLAPS: _geo("overlaps"),
    Operator.DISJOINT: _geo("disjoint"),
    Operator.GEOM_EQUALS: _geo("equals"),
    Operator.BBOX_INTERSECTS: _bbox,
    Operator.DISTANCE_LT: _distance(strict=True),
    Operator.DWITHIN: _distance(strict=False),
}
