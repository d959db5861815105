"""The kind of a resolved field, from its column type: what operators apply to it.

``field_kind`` reads the column type (``python_type``, JSON, GeoAlchemy2's ``geometry`` /
``geography`` by type name: no import of GeoAlchemy2 needed). Fields of no known Python type are
``untyped`` (a ``NullType`` hook expression, ``INET``, ``TSVECTOR`` ...), of other Python types
``other`` (``Interval``, ``LargeBinary``, ``ARRAY``, custom types).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Literal

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import Target

__all__ = ["FieldKind", "field_kind", "is_text"]

FieldKind = Literal[
    "text", "number", "boolean", "date/time", "UUID", "JSON", "geometry", "other", "untyped"
]

#: GeoAlchemy2 type names (``Geometry.name``) of spatial columns.
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


def is_text(target: Target) -> bool:
    """Whether the target holds text (string operators apply): a text or JSON field."""
    return field_kind(target) in ("text", "JSON")
