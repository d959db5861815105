"""``JSONType``: JSONB on PostgreSQL, JSON elsewhere, with the library's JSON codec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

from cqrs_ddd_persistence_sqlalchemy.serialization import is_flat, json_dumps, to_jsonable

__all__ = ["JSONType"]


class JSONType(TypeDecorator[Any]):
    """Dialect-agnostic JSON column: ``JSONB`` on PostgreSQL, ``JSON`` elsewhere.

    Values may contain datetimes, UUIDs, Decimals, enums and pydantic models: they are turned
    into plain JSON values by the library's codec before the driver sees them, so the column
    works on any engine (not only ones built with ``create_engine``). They come back as plain
    JSON values (datetimes as ISO 8601 text, Decimals as strings), which a pydantic model turns
    back into their types. Python ``None`` is stored as SQL ``NULL``::

        class OrderModel(Base):
            __tablename__ = "orders"
            id: Mapped[str] = mapped_column(primary_key=True)
            meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType())
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else to_jsonable(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        chain = super().bind_processor(dialect)
        if chain is None or not _serializes_flat_dicts_plainly(chain):
            return chain

        # The chain (this type's ``process_bind_param``, then the dialect's JSON processor)
        # for the usual value, a flat dict, is the library's serializer on it: called directly,
        # without the copy and the two layers (every payload and metadata saved passes here).
        def process(value: Any) -> Any:
            if type(value) is dict and is_flat(value):
                return json_dumps(value) if value else "{}"
            return chain(value)

        return process

    @property
    def python_type(self) -> type[Any]:
        return object

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        # Comparisons against JSON paths (``col["k"] == 1``) keep the JSON type's behaviour.
        return self.impl_instance.coerce_compared_value(op, value)


_PROBES: tuple[dict[str, Any], ...] = ({}, {"k": "v", "n": 1, "x": 1.5, "b": True, "z": None})


def _serializes_flat_dicts_plainly(chain: Callable[[Any], Any]) -> bool:
    """Whether ``chain`` turns a flat dict into the library serializer's text, and nothing else
    (the dialect's JSON serializer is the library's, no string processor after it)."""
    try:
        return all(chain(dict(p)) == json_dumps(p) for p in _PROBES)
    except Exception:  # a serializer of the application's that refuses the probe
        return False


@compiles(JSONType, "sqlite")
def _sqlite_json_ddl(type_: JSONType, compiler: TypeCompiler, **kw: Any) -> str:
    # A column declared plain ``JSON`` has NUMERIC affinity in SQLite, which turns the JSON
    # text ``123`` into an integer that no JSON decoder accepts back; a type name containing
    # ``TEXT`` gives TEXT affinity, and SQLite's JSON functions work on it all the same.
    return "JSON_TEXT"
