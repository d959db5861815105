"""``JSONType``: JSONB on PostgreSQL, JSON elsewhere, with the library's JSON codec."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads

__all__ = ["JSONType"]


def _bind(value: Any) -> str | None:
    return None if value is None else json_dumps(value)


def _result(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return json_loads(value)


class _CodecJSON(JSON):
    """Generic JSON whose (de)serialisation is the library's codec, not the engine's."""

    def bind_processor(self, dialect: Dialect) -> Any:
        return _bind

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return _result


class _CodecJSONB(postgresql.JSONB):
    """PostgreSQL JSONB with the library's codec (datetime/UUID/Decimal/pydantic aware)."""

    def bind_processor(self, dialect: Dialect) -> Any:
        return _bind

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return _result


class JSONType(TypeDecorator[Any]):
    """Dialect-agnostic JSON column: ``JSONB`` on PostgreSQL, ``JSON`` elsewhere.

    Values may contain datetimes, UUIDs, Decimals, enums and pydantic models; they are stored as
    JSON text (datetimes ISO 8601, Decimals as strings) and come back as plain JSON values, which
    a pydantic model turns back into their types::

        class OrderModel(Base):
            __tablename__ = "orders"
            id: Mapped[str] = mapped_column(primary_key=True)
            meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType())
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_CodecJSONB())
        return dialect.type_descriptor(_CodecJSON())

    @property
    def python_type(self) -> type[Any]:
        return object

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        # Comparisons against JSON paths (``col["k"] == 1``) keep the JSON type's behaviour.
        return self.impl_instance.coerce_compared_value(op, value)
