"""JSON form of specification values: datetimes, dates, times, UUIDs and Decimals survive.

``to_dict()`` keeps Python values as they are; :func:`dumps` / :func:`loads` encode the few
non-JSON scalar types as tagged objects ``{"__type__": "datetime", "value": "..."}`` so a
specification or cursor travels through JSON text without losing types. A dict with exactly the
keys ``__type__`` and ``value`` and a known tag is therefore reserved.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from cqrs_ddd_core.errors import InvalidValueError

__all__ = ["decode_value", "dumps", "encode_value", "loads"]

_TAG = "__type__"

_DECODERS: dict[str, Callable[[str], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
}


def encode_value(value: Any, *, path: str | None = None) -> Any:
    """Return ``value`` with every non-JSON scalar replaced by its tagged form.

    Raises:
        InvalidValueError: the value (or something inside it) has no JSON form.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError(f"non-finite number {value!r} has no JSON form", path=path)
        return value
    if isinstance(value, dt.datetime):
        return {_TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {_TAG: "date", "value": value.isoformat()}
    if isinstance(value, dt.time):
        return {_TAG: "time", "value": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "value": str(value)}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "value": str(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValueError(f"JSON object keys must be strings, got {key!r}", path=path)
            out[key] = encode_value(item, path=path)
        return out
    if isinstance(value, list | tuple):
        return [encode_value(item, path=path) for item in value]
    raise InvalidValueError(f"value of type {type(value).__name__} has no JSON form", path=path)


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value` (plain JSON values pass through)."""
    if isinstance(value, Mapping):
        tag = value.get(_TAG)
        if len(value) == 2 and isinstance(tag, str) and tag in _DECODERS and "value" in value:
            raw = value["value"]
            if not isinstance(raw, str):
                raise InvalidValueError(f"tagged {tag} value must be a string, got {raw!r}")
            try:
                return _DECODERS[tag](raw)
            except (ValueError, ArithmeticError) as exc:
                raise InvalidValueError(f"invalid {tag} value {raw!r}") from exc
        return {key: decode_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    return value


def dumps(data: Any) -> str:
    """Encode ``data`` (a specification dict, options dict, cursor) to JSON text."""
    return json.dumps(encode_value(data), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    """Decode JSON text written by :func:`dumps`.

    Raises:
        InvalidValueError: the text is not valid JSON.
    """
    try:
        return decode_value(json.loads(text))
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, InvalidValueError):
            raise
        raise InvalidValueError(f"not valid JSON: {exc}") from exc
