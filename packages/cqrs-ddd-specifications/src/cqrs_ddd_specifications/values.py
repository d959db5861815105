"""Value shapes per operator: validation and normalisation of a leaf's ``val``.

Each leaf value is checked once, when the leaf is built, so the in-memory evaluator and every SQL
compiler see the same, already validated value. Rejected on purpose (never reaching a database):
NaN/infinity, strings with NUL characters or lone surrogates (PostgreSQL cannot store them),
non-JSON objects, and regular expressions Python cannot compile.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from cqrs_ddd_core.errors import InvalidValueError

from .codec import encode_value
from .geometry import normalize_distance, normalize_geometry
from .operators import (
    DISTANCE_OPERATORS,
    FTS_OPERATORS,
    GEOMETRY_OPERATORS,
    NULL_OPERATORS,
    Operator,
)

__all__ = ["SCALAR_TYPES", "check_scalar", "check_text", "normalize_value"]

#: Python types a comparison value may have.
SCALAR_TYPES: tuple[type, ...] = (
    str,
    bool,
    int,
    float,
    Decimal,
    dt.datetime,
    dt.date,
    dt.time,
    uuid.UUID,
)
#: JSONPath subset understood everywhere: ``$``, ``.key``, ``."quoted key"``, ``[n]``.
JSON_PATH = re.compile(r'^\$(\.[A-Za-z_][A-Za-z0-9_]*|\."[^"\\]+"|\[\d+\])*$')


def check_text(value: Any, *, path: str | None, what: str = "value") -> str:
    """Return ``value`` if it is text a database can store, else raise."""
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string, got {type(value).__name__}", path=path)
    if "\x00" in value:
        raise InvalidValueError(f"{what} contains a NUL character", path=path)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValueError(f"{what} is not valid Unicode text", path=path) from exc
    return value


def check_scalar(value: Any, *, path: str | None, allow_none: bool = False) -> Any:
    """Return ``value`` if it is a comparable scalar, else raise."""
    if value is None:
        if allow_none:
            return None
        raise InvalidValueError("value must not be null for this operator", path=path)
    if isinstance(value, str):
        return check_text(value, path=path)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValueError(f"non-finite number {value!r}", path=path)
    if isinstance(value, Decimal) and not value.is_finite():
        raise InvalidValueError(f"non-finite number {value!r}", path=path)
    if isinstance(value, SCALAR_TYPES):
        return value
    raise InvalidValueError(
        f"expected a scalar (string, number, boolean, date/time or UUID), "
        f"got {type(value).__name__}",
        path=path,
    )


def _sequence(value: Any, *, path: str | None, what: str) -> list[Any]:
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str | bytes):
        return list(value)
    raise InvalidValueError(f"{what} needs a list, got {type(value).__name__}", path=path)


def _scalar_list(value: Any, *, path: str | None, what: str, non_empty: bool) -> list[Any]:
    items = _sequence(value, path=path, what=what)
    if non_empty and not items:
        raise InvalidValueError(f"{what} needs a non-empty list", path=path)
    return [check_scalar(item, path=path) for item in items]


def _json_document(value: Any, *, path: str | None) -> Any:
    _check_json_text(value, path=path)
    encode_value(value, path=path)  # raises on anything without a JSON form
    return _plain_json(value)


def _check_json_text(value: Any, *, path: str | None) -> None:
    if isinstance(value, str):
        check_text(value, path=path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                check_text(key, path=path, what="JSON key")
            _check_json_text(item, path=path)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json_text(item, path=path)
    elif not (value is None or isinstance(value, bool | int | float)):
        raise InvalidValueError(
            f"JSON operators take JSON values, got {type(value).__name__}", path=path
        )


def _plain_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    return value


def _ordered(value: Any, *, path: str | None) -> Any:
    # Booleans have no order in SQL (SQLAlchemy refuses ``bool > bool``, JSON booleans are not
    # numbers): refused for every backend alike, the in-memory evaluator included.
    if isinstance(value, bool):
        raise InvalidValueError(
            "ordering operators (>, <, >=, <=, between) do not apply to booleans", path=path
        )
    return check_scalar(value, path=path)


def _between(value: Any, *, path: str | None) -> list[Any]:
    items = _scalar_list(value, path=path, what="between", non_empty=True)
    if len(items) != 2:
        raise InvalidValueError("between needs exactly two bounds [low, high]", path=path)
    return [_ordered(item, path=path) for item in items]


def _regex(value: Any, *, path: str | None) -> str:
    text = check_text(value, path=path, what="pattern")
    try:
        re.compile(text)
    except re.error as exc:
        raise InvalidValueError(f"invalid regular expression: {exc}", path=path) from exc
    return text


def _fts(value: Any, *, path: str | None) -> str:
    text = check_text(value, path=path, what="search text")
    if not text.strip():
        raise InvalidValueError("search text must not be blank", path=path)
    return text


def _json_path(value: Any, *, path: str | None) -> str:
    text = check_text(value, path=path, what="JSON path")
    if not JSON_PATH.match(text):
        raise InvalidValueError(
            f'unsupported JSON path {text!r} (use $.key, $."key" and [n] steps)', path=path
        )
    return text


def _flag(value: Any, *, path: str | None) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    raise InvalidValueError("null/empty operators take true, false or no value", path=path)


def _key_list(value: Any, *, path: str | None) -> list[str]:
    items = _sequence(value, path=path, what="key list")
    if not items:
        raise InvalidValueError("key list must not be empty", path=path)
    return [check_text(item, path=path, what="key") for item in items]


_Normalizer = Callable[..., Any]

_BY_OPERATOR: dict[Operator, _Normalizer] = {
    Operator.EQ: lambda v, path: check_scalar(v, path=path, allow_none=True),
    Operator.NE: lambda v, path: check_scalar(v, path=path, allow_none=True),
    Operator.GT: _ordered,
    Operator.LT: _ordered,
    Operator.GTE: _ordered,
    Operator.LTE: _ordered,
    Operator.IN: lambda v, path: _scalar_list(v, path=path, what="in", non_empty=False),
    Operator.NOT_IN: lambda v, path: _scalar_list(v, path=path, what="not_in", non_empty=False),
    Operator.ALL: lambda v, path: _scalar_list(v, path=path, what="all", non_empty=True),
    Operator.BETWEEN: _between,
    Operator.NOT_BETWEEN: _between,
    Operator.REGEX: _regex,
    Operator.IREGEX: _regex,
    Operator.JSON_CONTAINS: _json_document,
    Operator.JSON_CONTAINED_BY: _json_document,
    Operator.JSON_HAS_KEY: lambda v, path: check_text(v, path=path, what="key"),
    Operator.JSON_HAS_ANY: _key_list,
    Operator.JSON_HAS_ALL: _key_list,
    Operator.JSON_PATH_EXISTS: _json_path,
}
for _op in (
    Operator.LIKE,
    Operator.NOT_LIKE,
    Operator.ILIKE,
    Operator.CONTAINS,
    Operator.ICONTAINS,
    Operator.STARTSWITH,
    Operator.ISTARTSWITH,
    Operator.ENDSWITH,
    Operator.IENDSWITH,
):
    _BY_OPERATOR[_op] = check_text
for _op in NULL_OPERATORS:
    _BY_OPERATOR[_op] = _flag
for _op in FTS_OPERATORS:
    _BY_OPERATOR[_op] = _fts
for _op in GEOMETRY_OPERATORS - DISTANCE_OPERATORS:
    _BY_OPERATOR[_op] = normalize_geometry
for _op in DISTANCE_OPERATORS:
    _BY_OPERATOR[_op] = normalize_distance


def normalize_value(op: Operator, value: Any, *, path: str | None = None) -> Any:
    """Validate ``value`` for ``op`` and return its normal form.

    Raises:
        InvalidValueError: the value has the wrong shape or type for the operator.
    """
    normalizer = _BY_OPERATOR.get(op)
    if normalizer is None:
        raise InvalidValueError(f"{op.value!r} is not a leaf operator", path=path)
    return normalizer(value, path=path)
