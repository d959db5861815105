"""Bring comparison values to the type of the column they are compared with.

A value that cannot be converted (``"abc"`` for an integer column, ``10**30`` for a BIGINT) is an
:class:`InvalidValueError` at build time, never a driver error at execution time.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_core.errors import InvalidValueError

from .applicability import field_kind
from .target import Target

__all__ = ["coerce", "is_text"]

_INT_RANGE = {
    sa.SmallInteger: 2**15,
    sa.BigInteger: 2**63,
    sa.Integer: 2**31,
}


def _python_type(target: Target) -> type[Any] | None:
    if target.is_json:
        return None
    try:
        return target.type.python_type
    except NotImplementedError:
        return None


def is_text(target: Target) -> bool:
    """Whether the target holds text (string operators apply): a text or JSON field."""
    return field_kind(target) in ("text", "JSON")


def _int(value: Any, target: Target) -> int:
    if isinstance(value, bool):
        raise InvalidValueError(
            f"{target.name}: expected an integer, got a boolean", path=target.path
        )
    if isinstance(value, float | Decimal) and value == int(value):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidValueError(
            f"{target.name}: expected an integer, got {value!r}", path=target.path
        )
    for type_, bound in _INT_RANGE.items():
        if isinstance(target.type, type_):
            if not -bound <= value < bound:
                raise InvalidValueError(
                    f"{target.name}: {value} is out of range for {type(target.type).__name__}",
                    path=target.path,
                )
            break
    return value


def _number(value: Any, target: Target) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidValueError(
            f"{target.name}: expected a number, got {value!r}", path=target.path
        )
    return value


def _parser(kind: type[Any]) -> Callable[[Any, Target], Any]:
    parse: Callable[[str], Any] = {
        dt.datetime: dt.datetime.fromisoformat,
        dt.date: dt.date.fromisoformat,
        dt.time: dt.time.fromisoformat,
        uuid.UUID: uuid.UUID,
    }[kind]

    def parsed(value: Any, target: Target) -> Any:
        if isinstance(value, kind) and not (kind is dt.date and isinstance(value, dt.datetime)):
            return value
        if isinstance(value, str):
            try:
                return parse(value)
            except ValueError as exc:
                raise InvalidValueError(
                    f"{target.name}: {value!r} is not a valid {kind.__name__}", path=target.path
                ) from exc
        raise InvalidValueError(
            f"{target.name}: expected a {kind.__name__}, got {value!r}", path=target.path
        )

    def convert(value: Any, target: Target) -> Any:
        result = parsed(value, target)
        # A naive value cannot be compared with a zone-aware column (the bind would fail at
        # execution time, outside the compiler): refuse it here, as the column type does.
        if isinstance(result, dt.datetime) and result.tzinfo is None and _aware(target):
            raise InvalidValueError(
                f"{target.name}: {value!r} has no time zone (the column is zone-aware)",
                path=target.path,
            )
        return result

    return convert


def _aware(target: Target) -> bool:
    type_ = target.type
    impl = getattr(type_, "impl", type_)
    return bool(getattr(impl, "timezone", False) or getattr(type_, "timezone", False))


def _same(kind: type[Any]) -> Callable[[Any, Target], Any]:
    def convert(value: Any, target: Target) -> Any:
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        raise InvalidValueError(
            f"{target.name}: expected a {kind.__name__}, got {value!r}", path=target.path
        )

    return convert


def _enum_or_str(value: Any, target: Target) -> Any:
    if isinstance(value, str | enum.Enum):
        return value
    raise InvalidValueError(f"{target.name}: expected a string, got {value!r}", path=target.path)


def coerce(target: Target, value: Any) -> Any:
    """Return ``value`` converted for comparison with ``target``."""
    python_type = _python_type(target)
    if python_type is None or value is None:
        return value
    converter: Callable[[Any, Target], Any]
    if python_type is bool:
        converter = _same(bool)
    elif python_type is int:
        converter = _int
    elif python_type in (float, Decimal):
        converter = _number
    elif python_type in (dt.datetime, dt.date, dt.time, uuid.UUID):
        converter = _parser(python_type)
    elif issubclass(python_type, str | enum.Enum):
        converter = _enum_or_str
    else:
        return value
    return converter(value, target)
