"""What a leaf's field resolves to: an SQL expression, optionally keys into a JSON document."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidSpecificationError, InvalidValueError

__all__ = ["ScalarKind", "Target", "is_json_type", "require_json", "scalar_kind"]

#: The kind of JSON scalar a comparison reads (the comparison value's kind).
ScalarKind = Literal["str", "number", "bool"]


def is_json_type(type_: sa.types.TypeEngine[Any]) -> bool:
    """Whether ``type_`` is JSON, directly or as a ``TypeDecorator`` over JSON (``JSONType``)."""
    if isinstance(type_, sa.JSON):
        return True
    return isinstance(getattr(type_, "impl_instance", None), sa.JSON)


@dataclass(frozen=True)
class Target:
    """A resolved field: an SQL expression, optionally followed by keys into a JSON document."""

    expr: ColumnElement[Any]
    name: str
    path: str
    model: type[Any] | None = None
    json_path: tuple[str, ...] = ()
    info: Any = None

    @property
    def type(self) -> sa.types.TypeEngine[Any]:
        return self.expr.type

    @property
    def is_json(self) -> bool:
        """Whether the target is (inside) a JSON document."""
        return bool(self.json_path) or is_json_type(self.expr.type)

    def setting(self, key: str) -> Any:
        """A per-column setting from ``Column(info={...})`` (``fts_config``, ``tsvector`` ...)."""
        return self.info.get(key) if isinstance(self.info, dict) else None


def scalar_kind(value: Any, target: Target) -> ScalarKind:
    """The JSON kind matching a Python comparison value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "str"
    raise InvalidValueError(
        f"JSON values compare with strings, numbers or booleans, not {type(value).__name__}",
        path=target.path,
    )


def require_json(target: Target) -> None:
    """Raise unless ``target`` is a JSON column or a path into one."""
    if not target.is_json:
        raise InvalidSpecificationError(
            f"{target.name}: this operator needs a JSON field", path=target.path
        )
