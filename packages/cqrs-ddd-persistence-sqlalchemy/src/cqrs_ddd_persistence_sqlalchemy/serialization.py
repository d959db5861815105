"""The JSON codec every JSON column of the library uses.

Handles what domain payloads hold and ``json.dumps`` refuses: aware/naive datetimes, dates,
times, UUIDs, Decimals (as strings, so no precision is lost), enums, sets, bytes (base64) and
pydantic models / dataclasses. Uses orjson when it is installed (it is ~5x faster on the append
path), the standard library otherwise; both produce the same JSON text for the same value.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cqrs_ddd_core.errors import SerializationError

__all__ = ["json_default", "json_dumps", "json_loads", "to_jsonable"]


def json_default(value: Any) -> Any:
    """Fallback for values the JSON encoder does not know."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise SerializationError(f"cannot serialize {type(value).__name__} to JSON")


def _stdlib_dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=json_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot serialize to JSON: {exc}") from exc


def _stdlib_loads(text: str | bytes) -> Any:
    return json.loads(text)


_dumps: Callable[[Any], str] = _stdlib_dumps
_loads: Callable[[str | bytes], Any] = _stdlib_loads

try:  # pragma: no cover - exercised when orjson is installed
    import orjson

    _OPTS = orjson.OPT_PASSTHROUGH_DATACLASS
    # Non-text dict keys (turned into text, as the stdlib path does) cost every encoding about
    # half again as much: only for a value that has them, found by the first attempt failing.
    _OPTS_ANY_KEYS = _OPTS | orjson.OPT_NON_STR_KEYS

    def _orjson_dumps(value: Any) -> str:
        try:
            try:
                text = orjson.dumps(value, default=json_default, option=_OPTS)
            except orjson.JSONEncodeError:
                text = orjson.dumps(value, default=json_default, option=_OPTS_ANY_KEYS)
        except orjson.JSONEncodeError as exc:
            cause = exc.__cause__
            if isinstance(cause, SerializationError):
                raise cause from None
            raise SerializationError(f"cannot serialize to JSON: {exc}") from exc
        # orjson writes NaN/Infinity as null (silent data change); the stdlib path refuses
        # them. Only a text containing null can hide one, so the walk stays off the hot path.
        if b"null" in text and _has_non_finite(value):
            raise SerializationError("cannot serialize to JSON: NaN or Infinity is not JSON")
        return text.decode()

    _dumps = _orjson_dumps
    _loads = orjson.loads
except ImportError:  # pragma: no cover
    pass


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return False


def json_dumps(value: Any) -> str:
    """Serialize ``value`` to compact JSON text (raises ``SerializationError``)."""
    return _dumps(value)


def json_loads(text: str | bytes) -> Any:
    """Parse JSON text."""
    try:
        return _loads(text)
    except ValueError as exc:
        raise SerializationError(f"invalid JSON: {exc}") from exc


#: Value types a flat JSON object may hold as they are (exact types: subclasses such as enums
#: take the general path).
_FLAT = frozenset({str, int, float, bool})


def is_flat(value: dict[Any, Any]) -> bool:
    """Whether the dict ``value`` holds only text keys and plain scalar values (the usual
    payload or metadata), which JSON encoders take as they are."""
    for k, v in value.items():
        if type(k) is not str or (v is not None and type(v) not in _FLAT):
            return False
    return True


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dict/list/str/int/float/bool/None)."""
    if type(value) is dict and is_flat(value):  # the usual case, without ABC checks
        return dict(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if (
        isinstance(value, Mapping)
        and all(isinstance(k, str) for k in value)
        and all(v is None or isinstance(v, str | int | float | bool) for v in value.values())
    ):
        return dict(value)
    return json_loads(json_dumps(value))
