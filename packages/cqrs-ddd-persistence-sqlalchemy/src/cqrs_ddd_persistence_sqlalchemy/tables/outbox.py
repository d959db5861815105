"""The outbox table: the standard queue columns plus the message fields."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, UniqueConstraint

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.tables.queue import queue_columns, queue_indexes
from cqrs_ddd_persistence_sqlalchemy.types import JSONType

__all__ = ["OUTBOX_TABLE_NAME", "outbox_table"]

OUTBOX_TABLE_NAME = "outbox_messages"

outbox_table = Table(
    OUTBOX_TABLE_NAME,
    metadata,
    *queue_columns(key_column="partition_key"),
    Column("message_id", String(64), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("payload", JSONType(), nullable=False),
    Column("metadata", JSONType(), nullable=False),
    Column("correlation_id", String(255), nullable=True),
    Column("causation_id", String(255), nullable=True),
    Column("tenant_id", String(255), nullable=True),
    UniqueConstraint("message_id"),
    *queue_indexes(OUTBOX_TABLE_NAME, key_column="partition_key"),
)
