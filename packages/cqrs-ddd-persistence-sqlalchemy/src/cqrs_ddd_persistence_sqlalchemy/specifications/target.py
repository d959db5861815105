"""What a leaf's field resolves to, and the context operator functions compile in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidSpecificationError, InvalidValueError

if TYPE_CHECKING:
    from .registry import JsonAccess, SQLAlchemyOperatorRegistry

__all__ = ["CompileContext", "ScalarKind", "Target", "is_json_type", "require_json", "scalar_kind"]

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


@dataclass(frozen=True)
class CompileContext:
    """Passed to operator functions: the dialect being compiled for and the registry."""

    dialect: str
    registry: SQLAlchemyOperatorRegistry

    def json(self, target: Target) -> JsonAccess:
        """The dialect's reader of JSON documents."""
        return self.registry.json_access(self.dialect, target)

    def scalar(self, target: Target, kind: ScalarKind) -> ColumnElement[Any]:
        """The target as a comparable scalar (JSON values of another kind become NULL)."""
        if not target.is_json:
            return target.expr
        return self.json(target).scalar(target.expr, target.json_path, kind)


def scalar_kind(value: Any, target: Target) -> ScalarKind:
    """The JSON kind matching a Python comparison value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    from decimal import Decimal

    if isinstance(value, Decimal):
        return "number"
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
