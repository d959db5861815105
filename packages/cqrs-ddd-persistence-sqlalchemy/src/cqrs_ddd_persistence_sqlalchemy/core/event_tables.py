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

from typing import Any

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
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import UserDefinedType

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

__all__ = ["Xid8", "current_xact_id", "events_table", "stream_tombstones_table"]


class Xid8(UserDefinedType[int]):
    """PostgreSQL ``xid8`` (64-bit, never wraps); a plain ``BIGINT`` elsewhere."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


@compiles(Xid8, "sqlite")
def _xid8_sqlite(element: Xid8, compiler: Any, **kw: Any) -> str:
    return "BIGINT"


class current_xact_id(FunctionElement[int]):
    """``pg_current_xact_id()`` on PostgreSQL, ``0`` elsewhere (serialised writers)."""

    type = Xid8()
    inherit_cache = True


@compiles(current_xact_id)
def _current_xact_id_default(element: current_xact_id, compiler: Any, **kw: Any) -> str:
    return "0"


@compiles(current_xact_id, "postgresql")
def _current_xact_id_pg(element: current_xact_id, compiler: Any, **kw: Any) -> str:
    return "pg_current_xact_id()"


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
