"""Tables of projections: the checkpoint table (library metadata) and collection tables.

Collection tables are user data, so they live on a ``MetaData`` of the store (same naming
convention), not on the library's :data:`~cqrs_ddd_persistence_sqlalchemy.schema.metadata`.
Every collection has the bookkeeping columns ``_version``, ``_last_event_id``,
``_last_position`` and ``_updated_at``; a document collection adds ``id`` and ``doc`` (JSON), a
typed one the columns of its :class:`ProjectionSchema`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

from cqrs_ddd_advanced_core.projections import FieldType, ProjectionField, ProjectionSchema
from cqrs_ddd_advanced_core.projections.schema import validate_identifier
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION, metadata
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads
from cqrs_ddd_persistence_sqlalchemy.tables.projections import projection_positions_table
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = [
    "BOOKKEEPING",
    "DOCUMENT_COLUMNS",
    "collection_metadata",
    "document_table",
    "projection_positions_table",
    "typed_table",
]

_BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _bind(value: Any) -> str | None:
    return None if value is None else json_dumps(value)


def _result(value: Any) -> Any:
    return json_loads(value) if isinstance(value, str | bytes) else value


class _CodecJSON(sa.JSON):
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        return _bind

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        return _result


class _CodecJSONB(postgresql.JSONB):
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        return _bind

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        return _result


def document_json() -> TypeEngine[Any]:
    """JSON (JSONB on PostgreSQL) with the library's codec.

    Unlike ``types.JSONType`` (a ``TypeDecorator``) this is an ``sa.JSON`` itself, which the
    specification compiler needs to read key paths into the column.
    """
    return _CodecJSON().with_variant(_CodecJSONB(), "postgresql")


#: Bookkeeping columns of every collection table.
BOOKKEEPING = ("_version", "_last_event_id", "_last_position", "_updated_at")
#: Columns of a document collection table.
DOCUMENT_COLUMNS = frozenset({"id", "doc", *BOOKKEEPING})


def collection_metadata() -> sa.MetaData:
    """A fresh ``MetaData`` for collection tables, with the library's naming convention."""
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


def _bookkeeping() -> list[sa.Column[Any]]:
    return [
        sa.Column("_version", sa.BigInteger(), nullable=False),
        sa.Column("_last_event_id", sa.String(64), nullable=True),
        sa.Column("_last_position", sa.BigInteger(), nullable=True),
        sa.Column("_updated_at", UTCDateTime(), nullable=False),
    ]


def _check_name(name: str) -> None:
    validate_identifier(name, what="collection name")
    if name in metadata.tables:
        raise ConfigurationError(
            f"collection name {name!r} is a table of the library; choose another name"
        )


def document_table(name: str, md: sa.MetaData) -> sa.Table:
    """The table of a schemaless document collection ``name``."""
    _check_name(name)
    return sa.Table(
        name,
        md,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("doc", document_json(), nullable=False),
        *_bookkeeping(),
    )


def _column_type(field: ProjectionField) -> TypeEngine[Any]:
    kind = field.type
    if kind is FieldType.STRING:
        return sa.String(field.length) if field.length else sa.String()
    types: dict[FieldType, TypeEngine[Any]] = {
        FieldType.TEXT: sa.Text(),
        FieldType.INTEGER: sa.Integer(),
        FieldType.BIGINT: _BigInt if not field.primary_key else sa.BigInteger(),
        FieldType.FLOAT: sa.Float(),
        FieldType.DECIMAL: sa.Numeric(38, 10, asdecimal=True),
        FieldType.BOOLEAN: sa.Boolean(),
        FieldType.DATETIME: UTCDateTime(),
        FieldType.DATE: sa.Date(),
        FieldType.UUID: sa.Uuid(),
        FieldType.JSON: document_json(),
    }
    return types[kind]


def typed_table(name: str, schema: ProjectionSchema, md: sa.MetaData) -> sa.Table:
    """The table of a typed collection ``name`` with the columns of ``schema``."""
    _check_name(name)
    columns: list[sa.Column[Any]] = [
        sa.Column(
            f.name,
            _column_type(f),
            primary_key=f.primary_key,
            nullable=f.nullable and not f.primary_key,
            index=f.index or None,
            unique=f.unique or None,
            autoincrement=False,
        )
        for f in schema.fields
    ]
    return sa.Table(name, md, *columns, *_bookkeeping())
