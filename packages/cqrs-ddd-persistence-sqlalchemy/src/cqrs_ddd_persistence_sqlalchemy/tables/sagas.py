"""The sagas table: one row per saga instance, on the standard queue columns (recovery claims
stalled and timed-out sagas like any queue)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.tables.queue import queue_columns, queue_indexes
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

__all__ = ["UQ_SAGA_CORRELATION", "UQ_SAGA_ID", "sagas_table"]

sagas_table = Table(
    "cqrs_sagas",
    metadata,
    *queue_columns(),
    Column("saga_id", String(64), nullable=False, unique=True),
    Column("saga_type", String(255), nullable=False),
    Column("correlation_id", String(255), nullable=True),
    Column("saga_status", String(16), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("waiting_for", String(255), nullable=True),
    Column("timeout_at", UTCDateTime(), nullable=True),
    Column("error", Text(), nullable=True),
    Column("state", JSONType(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # One saga per (type, correlation id); the same correlation id may start sagas of other types.
    UniqueConstraint("saga_type", "correlation_id"),
    Index("ix_cqrs_sagas_saga_type_saga_status", "saga_type", "saga_status"),
    *queue_indexes("cqrs_sagas"),
)

UQ_SAGA_ID = "uq_cqrs_sagas_saga_id"
UQ_SAGA_CORRELATION = "uq_cqrs_sagas_saga_type_correlation_id"
