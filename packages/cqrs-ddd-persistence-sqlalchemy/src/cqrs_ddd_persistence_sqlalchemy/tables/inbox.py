"""The inbox table: one row per message a consumer has handled."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from cqrs_ddd_core.ports.inbox import MAX_INBOX_KEY_LENGTH
from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = ["INBOX_TABLE_NAME", "inbox_table"]

INBOX_TABLE_NAME = "cqrs_inbox"

inbox_table = Table(
    INBOX_TABLE_NAME,
    metadata,
    # The primary key is the deduplication: a second insert of the same pair conflicts.
    Column("consumer", String(MAX_INBOX_KEY_LENGTH), primary_key=True),
    Column("message_id", String(MAX_INBOX_KEY_LENGTH), primary_key=True),
    Column("handled_at", UTCDateTime(), nullable=False),
    # Serves purge-by-age without scanning the table.
    Index(f"ix_{INBOX_TABLE_NAME}_handled_at", "handled_at"),
)
