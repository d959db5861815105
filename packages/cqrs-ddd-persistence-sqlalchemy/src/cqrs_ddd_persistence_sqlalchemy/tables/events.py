"""Tables of the event store: the event log and stream tombstones.

``cqrs_events`` holds every event once:

- ``position`` — BIGINT identity, the insertion number (may have gaps: rolled-back appends and
  lost version races burn numbers; nothing ever renumbers).
- ``(stream_id, version)`` — unique, the last line of defence of optimistic concurrency
  (``uq_cqrs_events_stream_id_version`` is translated to ``WrongExpectedVersionError``).
- ``event_id`` — unique, what makes a retried append idempotent.
- ``txid`` — on PostgreSQL ``xid8 NOT NULL DEFAULT pg_current_xact_id()``: the appending
  transaction. Global readers page by ``(txid, position)`` below the snapshot horizon
  (``pg_snapshot_xmin``), which is what makes the cursor commit-safe (ARCHITECTURE §4). On SQLite
  the column is a constant 0: writers are serialised (``BEGIN IMMEDIATE``), so position order is
  commit order.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Identity,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime
from cqrs_ddd_persistence_sqlalchemy.types.xid8 import Xid8, current_xact_id

__all__ = [
    "EVENT_FIELDS",
    "UQ_EVENT_ID",
    "UQ_STREAM_VERSION",
    "Xid8",
    "current_xact_id",
    "events_table",
    "stream_tombstones_table",
]


_POSITION = BigInteger().with_variant(Integer, "sqlite")

events_table = Table(
    "cqrs_events",
    metadata,
    Column("position", _POSITION, Identity(), primary_key=True),
    Column("event_id", String(255), nullable=False),
    Column("stream_id", String(255), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("aggregate_type", String(255), nullable=True),
    Column("schema_version", Integer, nullable=False, default=1),
    Column("payload", JSONType(), nullable=False),
    Column("metadata", JSONType(), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("correlation_id", String(255), nullable=True),
    Column("causation_id", String(255), nullable=True),
    Column("tenant_id", String(255), nullable=True),
    Column("txid", Xid8(), nullable=False, server_default=current_xact_id()),
    UniqueConstraint("stream_id", "version"),
    UniqueConstraint("event_id"),
    # The commit-safe global cursor: ``WHERE txid < horizon AND (txid, position) > cursor``.
    Index(None, "txid", "position"),
    # No other secondary index: each one costs every append; filtered global reads walk the
    # cursor index anyway.
    # SQLite: AUTOINCREMENT so a hard-deleted last stream never lets a position be reused.
    sqlite_autoincrement=True,
)

stream_tombstones_table = Table(
    "cqrs_event_stream_tombstones",
    metadata,
    Column("stream_id", String(255), primary_key=True),
    Column("deleted_at", UTCDateTime(), nullable=False),
    # Version of the stream when it was tombstoned; its events keep their numbers.
    Column("last_version", BigInteger, nullable=False),
    Column("hard", Integer, nullable=False, default=0),
    Column("reason", String(255), nullable=True),
)

#: Constraint names the store translates (stable through the naming convention).
UQ_STREAM_VERSION = "uq_cqrs_events_stream_id_version"
UQ_EVENT_ID = "uq_cqrs_events_event_id"

#: The columns of a stored event, in the one order every read selects them
#: (``dialects.eventlog.event_columns()``) and rows are decoded by (``eventstore.mapping``,
#: which maps each column to the ``StoredEvent`` field of the same name — ``stream_id`` is the
#: record's ``aggregate_id``).
EVENT_FIELDS: tuple[str, ...] = (
    "position",
    "event_id",
    "stream_id",
    "version",
    "event_type",
    "aggregate_type",
    "schema_version",
    "payload",
    "metadata",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "tenant_id",
)
