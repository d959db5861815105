"""Field resolution: a dotted field path to relationship hops and a :class:`Target`.

A segment may name a mapped attribute *or* its column name (``metadata`` for an attribute ``meta``
mapped to column ``"metadata"``), or a relationship. Segments after a JSON column are keys inside
the document. Resolution hooks map custom field names to expressions first.

Resolutions are memoised per ``(model, field path)`` in a bounded LRU (:data:`CACHE_SIZE`
entries): only paths that resolved are stored (an unknown field raises and is never cached), and
the bound keeps memory flat when the keys of a JSON document — which any caller may name — are
varied without end. Hooks are consulted before the memo, so they still take precedence.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, RelationshipProperty
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import (
    ConfigurationError,
    CQRSDDDError,
    FieldNotFoundError,
    InvalidSpecificationError,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import Target, is_json_type

__all__ = [
    "CACHE_SIZE",
    "Hooks",
    "ResolutionHook",
    "Resolved",
    "attribute_key",
    "known_fields",
    "resolve_field",
]

#: ``hook(model, field) -> expression | None``; the first hook returning an expression wins.
ResolutionHook = Callable[[type[Any], str], ColumnElement[Any] | None]
#: Hooks: a mapping ``field -> expression | (model -> expression)`` or a sequence of hooks.
Hooks = (
    Mapping[str, ColumnElement[Any] | Callable[[type[Any]], ColumnElement[Any]]]
    | Sequence[ResolutionHook]
    | ResolutionHook
)

#: Most ``(model, field path)`` resolutions kept (least recently used ones are dropped).
CACHE_SIZE = 2048


@dataclass(frozen=True)
class Resolved:
    """Relationships to walk (outermost first) and the target on the last model."""

    hops: tuple[tuple[type[Any], RelationshipProperty[Any]], ...]
    target: Target


def _mapper(model: type[Any]) -> Mapper[Any]:
    try:
        mapper = sa.inspect(model)
    except sa.exc.NoInspectionAvailable as exc:
        raise ConfigurationError(f"{model!r} is not a mapped class") from exc
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(f"{model!r} is not a mapped class")
    return mapper


def known_fields(model: type[Any]) -> list[str]:
    """Attribute keys, column names and relationship names of ``model``."""
    mapper = _mapper(model)
    names = {attr.key for attr in mapper.column_attrs}
    names.update(column.name for column in mapper.columns)
    names.update(mapper.relationships.keys())
    return sorted(names)


def attribute_key(mapper: Mapper[Any], name: str) -> str | None:
    """The attribute key mapping ``name`` (an attribute key or a column name), if any."""
    if name in mapper.column_attrs:
        return name
    for attr in mapper.column_attrs:
        if any(getattr(col, "name", None) == name for col in attr.columns):
            return attr.key
    return None


def _from_hooks(hooks: Hooks | None, model: type[Any], field: str) -> ColumnElement[Any] | None:
    if hooks is None:
        return None
    if isinstance(hooks, Mapping):
        found = hooks.get(field)
        if found is None:
            return None
        return found if isinstance(found, ColumnElement) else found(model)
    for hook in [hooks] if callable(hooks) else hooks:
        expr = hook(model, field)
        if expr is not None:
            return expr
    return None


def resolve_field(
    model: type[Any], field: str, hooks: Hooks | None = None, *, path: str = "$"
) -> Resolved:
    """Resolve ``field`` on ``model``.

    Raises:
        FieldNotFoundError: a segment is unknown (with suggestions).
        InvalidSpecificationError: keys follow a column that is not JSON.
    """
    hooked = _from_hooks(hooks, model, field)
    if hooked is not None:
        return Resolved((), Target(hooked, field, path, model=model))
    try:
        resolved = _memoised(cast(Hashable, model), field)
    except (CQRSDDDError, TypeError):
        # errors are not cached; resolve again to report them at the caller's path (and
        # unhashable input, which the memo cannot take, gets the same treatment)
        return _resolve(model, field, path)
    return resolved if path == "$" else Resolved(resolved.hops, replace(resolved.target, path=path))


@lru_cache(maxsize=CACHE_SIZE)
def _memoised(model: type[Any], field: str) -> Resolved:
    # Resolved and Target are frozen: one instance is shared by every caller
    return _resolve(model, field, "$")


def _resolve(model: type[Any], field: str, path: str) -> Resolved:
    parts = field.split(".")
    hops: list[tuple[type[Any], RelationshipProperty[Any]]] = []
    current = model
    for index, part in enumerate(parts):
        mapper = _mapper(current)
        if part in mapper.relationships:
            relationship = mapper.relationships[part]
            hops.append((current, relationship))
            current = relationship.mapper.class_
            if index == len(parts) - 1:
                raise InvalidSpecificationError(
                    f"{field!r} names a relationship; name one of its fields", path=path
                )
            continue
        key = attribute_key(mapper, part)
        if key is None:
            raise FieldNotFoundError(
                field if index == 0 else part,
                known_fields(current),
                model=current.__name__,
                path=path,
            )
        attribute = mapper.column_attrs[key]
        expr: ColumnElement[Any] = getattr(current, key).expression
        keys = tuple(parts[index + 1 :])
        if keys and not is_json_type(expr.type):
            raise FieldNotFoundError(
                field, known_fields(current), model=current.__name__, path=path
            )
        for key_part in keys:
            if '"' in key_part or "\\" in key_part:
                raise InvalidSpecificationError(
                    f"JSON key {key_part!r} in a field path may not contain quotes or backslashes",
                    path=path,
                )
        info = attribute.columns[0].info if attribute.columns else None
        return Resolved(
            tuple(hops),
            Target(expr, field, path, model=current, json_path=keys, info=info),
        )
    raise FieldNotFoundError(field, known_fields(model), model=model.__name__, path=path)
