"""The scheduled commands table: the standard queue columns plus the command's fields."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.tables.queue import queue_columns, queue_indexes
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

__all__ = ["scheduled_commands_table"]

scheduled_commands_table = Table(
    "cqrs_scheduled_commands",
    metadata,
    *queue_columns(),
    Column("command_type", String(255), nullable=False),
    Column("payload", JSONType(), nullable=False),
    # Idempotent scheduling and once-per-period firing (purge frees keys).
    Column("key", String(255), nullable=True, unique=True),
    Column("max_attempts", Integer(), nullable=False),
    Column("cancelled_at", UTCDateTime(), nullable=True),
    *queue_indexes("cqrs_scheduled_commands"),
)
