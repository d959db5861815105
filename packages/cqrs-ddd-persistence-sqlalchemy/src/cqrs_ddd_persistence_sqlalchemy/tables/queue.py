"""The standard columns and indexes of a durable-queue table.

A queue table is any table that has these columns; the outbox, background jobs and scheduled
commands add their own payload columns next to them::

    jobs = Table(
        "jobs",
        metadata,
        *queue_columns(key_column="partition_key"),
        Column("job_type", String(255), nullable=False),
        Column("payload", JSONType(), nullable=False),
        *queue_indexes("jobs", key_column="partition_key"),
    )
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Identity,
    Index,
    Integer,
    String,
    Text,
    literal_column,
    text,
)

from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = [
    "DEAD",
    "DONE",
    "PENDING",
    "PENDING_SQL",
    "STATUSES",
    "STATUS_SQL",
    "queue_columns",
    "queue_indexes",
]

#: Waiting to be claimed (or claimed: ``lease_token`` set and ``locked_until`` in the future).
PENDING = "pending"
#: Acknowledged; kept until purged.
DONE = "done"
#: Gave up after ``max_attempts`` (or dead-lettered explicitly); ``requeue`` brings it back.
DEAD = "dead"
STATUSES = (PENDING, DONE, DEAD)

#: ``'pending'`` as an inline SQL literal, not a bound parameter: PostgreSQL can only use the
#: partial indexes (``WHERE status = 'pending'``) when the predicate is a constant — with a
#: parameter, the generic plan of a prepared claim scans every finished row.
PENDING_SQL: ColumnElement[str] = literal_column("'pending'", String())
#: Each status as an inline SQL literal, for the same reason (the jobs table's index of finished
#: rows is partial too: ``WHERE status <> 'pending'``).
STATUS_SQL: dict[str, ColumnElement[str]] = {
    status: literal_column(f"'{status}'", String()) for status in STATUSES
}


def queue_columns(*, key_column: str | None = None, key_length: int = 255) -> list[Column[object]]:
    """Fresh ``Column`` objects for a queue table (call once per table).

    Columns: ``id`` (BIGINT identity, the claim order), ``status``, ``available_at`` (due time:
    creation, schedule or backoff), ``locked_until`` + ``lease_token`` (the lease and its fencing
    token), ``attempts`` (failed attempts so far), ``last_error``, ``created_at``,
    ``finished_at`` (when acknowledged or dead-lettered) and, with ``key_column``, the ordering
    key column (only the oldest unfinished row of a key is claimable when ordering is on).
    """
    cols: list[Column[object]] = [
        Column(
            "id",
            BigInteger().with_variant(Integer, "sqlite"),
            Identity(),
            primary_key=True,
        ),
        Column("status", String(16), nullable=False, default=PENDING, server_default=PENDING),
        Column("available_at", UTCDateTime(), nullable=False, default=utc_now),
        Column("locked_until", UTCDateTime(), nullable=True),
        Column("lease_token", String(32), nullable=True),
        Column("attempts", Integer(), nullable=False, default=0, server_default=text("0")),
        Column("last_error", Text(), nullable=True),
        Column("created_at", UTCDateTime(), nullable=False, default=utc_now),
        Column("finished_at", UTCDateTime(), nullable=True),
    ]
    if key_column is not None:
        cols.append(Column(key_column, String(key_length), nullable=True))
    return cols


def queue_indexes(table_name: str, *, key_column: str | None = None) -> list[Index]:
    """Partial indexes over unfinished rows: the claim scan and, optionally, the key check.

    Both are partial (``status = 'pending'``) so done rows, which are the bulk of an old table,
    cost nothing to the claim query.
    """
    pending = text(f"status = '{PENDING}'")
    indexes = [
        # The claim scans unfinished rows in ``id`` order and stops after ``limit`` matches.
        Index(f"ix_{table_name}_pending", "id", postgresql_where=pending, sqlite_where=pending),
        Index(f"ix_{table_name}_status_finished", "status", "finished_at"),
    ]
    if key_column is not None:
        indexes.append(
            Index(
                f"ix_{table_name}_key",
                key_column,
                "id",
                postgresql_where=pending,
                sqlite_where=pending,
            )
        )
    return indexes
