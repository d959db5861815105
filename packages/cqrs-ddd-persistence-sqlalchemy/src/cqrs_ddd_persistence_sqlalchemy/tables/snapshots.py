"""The snapshots table: one row per (aggregate type, aggregate id, version)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

__all__ = ["snapshots_table"]

snapshots_table = Table(
    "cqrs_snapshots",
    metadata,
    Column("aggregate_type", String(255), primary_key=True),
    Column("aggregate_id", String(255), primary_key=True),
    Column("version", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("schema_version", Integer, nullable=False, default=1),
    Column("state", JSONType(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
