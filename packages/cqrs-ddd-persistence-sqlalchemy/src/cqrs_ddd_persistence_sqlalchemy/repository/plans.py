"""Mapping plans: how each entity field reaches the model, compiled once per mapper.

A :class:`~.mapper.ModelMapper` holds one plan per persisted field: a :class:`ColumnPlan`
(one column, with its converters), an :class:`EmbeddedPlan` (a value object flattened into
``<field>_<sub>`` columns) or a :class:`ChildPlan` (a one-to-many child table with its own
mapper). This module also holds what the plans are built from: annotation helpers and the
automatic conversion of a field's value for its column type.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.orm import RelationshipProperty

from cqrs_ddd_core.errors import ConfigurationError, MappingError
from cqrs_ddd_persistence_sqlalchemy.mixins.managed import MANAGED_INFO_KEY as MANAGED_INFO_KEY
from cqrs_ddd_persistence_sqlalchemy.mixins.managed import managed as managed
from cqrs_ddd_persistence_sqlalchemy.types.converter import FieldConverter as FieldConverter

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper

__all__ = [
    "MANAGED_INFO_KEY",
    "ChildPlan",
    "ColumnPlan",
    "EmbeddedPlan",
    "FieldConverter",
    "auto_to_db",
    "field_error",
    "is_model_type",
    "list_item",
    "managed",
    "unwrap_optional",
]


@dataclass(frozen=True)
class ColumnPlan:
    field: str
    attr: str  # model attribute key
    key: str  # Column.key (what Core statements and selected rows use)
    column: sa.Column[Any]
    to_db: Callable[[Any], Any]
    from_db: Callable[[Any], Any] | None
    writable: bool


@dataclass(frozen=True)
class EmbeddedPlan:
    field: str
    keys: tuple[tuple[str, str, str], ...]  # (sub-field, attribute key, Column.key)
    vo_cls: type[BaseModel]


@dataclass
class ChildPlan:
    field: str
    relationship: RelationshipProperty[Any]
    mapper: ModelMapper[Any]
    many: bool
    #: (parent Column.key, child Column.key) pairs of the foreign key.
    link: tuple[tuple[str, str], ...] = ()
    order_by: tuple[Any, ...] = dataclasses.field(default_factory=tuple)


def field_error(entity_cls: type[Any], name: str, message: str) -> MappingError:
    return MappingError(f"{entity_cls.__name__}.{name}: {message}", field=name)


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def is_model_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def list_item(annotation: Any) -> Any | None:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset) or origin is typing.Sequence:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return args[0] if args else None
    return None


#: Exact types a scalar column binds unchanged (an enum member's type is its enum class).
_AS_IS = frozenset({str, int, float, bool, type(None)})


def auto_to_db(column: sa.Column[Any], annotation: Any) -> Callable[[Any], Any]:
    """A converter from the entity's value to what ``column``'s type binds."""
    col_type = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        impl: Any = col_type.impl_instance
    else:
        impl = col_type
    is_json = isinstance(impl, sa.JSON) or type(col_type).__name__ == "JSONType"
    is_string = isinstance(impl, sa.String) and not is_json
    native_enum = isinstance(impl, sa.Enum) and impl.enum_class is not None
    inner, _ = unwrap_optional(annotation)
    if is_json:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)

        def to_json(value: Any) -> Any:
            return None if value is None else adapter.dump_python(value, mode="json")

        return to_json
    if is_string and (is_model_type(inner) or list_item(inner) is not None):
        adapter_s: TypeAdapter[Any] = TypeAdapter(annotation)

        def to_text(value: Any) -> Any:
            return None if value is None else adapter_s.dump_json(value).decode()

        return to_text
    if is_model_type(inner):
        raise ConfigurationError(
            f"column {column.name!r} holds a {inner.__name__}: use a JSON column, embedded "
            "columns or a converter"
        )

    def scalar(value: Any) -> Any:
        if type(value) in _AS_IS:  # the usual value, without the isinstance checks
            return value
        if isinstance(value, enum.Enum) and not native_enum:
            return value.value
        if is_string and isinstance(value, uuid.UUID | Decimal):
            return str(value)
        return value

    return scalar
