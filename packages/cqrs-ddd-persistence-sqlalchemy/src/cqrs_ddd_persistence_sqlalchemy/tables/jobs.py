"""The background jobs table: the standard queue columns plus the job's fields.

A job's status is never stored twice: it is derived from the queue columns (``pending`` + a
live lease = running, ``done`` + ``cancelled_at`` = cancelled, ...).

Indexes: not :func:`~.queue.queue_indexes`. Every index is written by every enqueue, so the
table has only those a query of the library needs (checked with EXPLAIN on a table of a million
rows, ``benchmarks/RESULTS.md``): the primary key; ``job_id`` (look-ups, cancel) and
``dedupe_key`` (the dedupe conflict), unique; the claim order over pending rows, which also
serves every other query about pending rows (stalled, leased, scheduled, the oldest due) — the
queue's ``(id) WHERE pending`` index would only duplicate it; and ``(status, finished_at)``
over finished rows only (purge, dead letters, requeue), which a new, pending row never enters.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text, false, text

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.tables.queue import PENDING, queue_columns
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

__all__ = ["jobs_table"]

jobs_table = Table(
    "cqrs_background_jobs",
    metadata,
    *queue_columns(),
    Column("job_id", String(64), nullable=False, unique=True),
    Column("job_type", String(255), nullable=False),
    Column("payload", JSONType(), nullable=False),
    Column("priority", Integer(), nullable=False, default=0, server_default=text("0")),
    Column("max_attempts", Integer(), nullable=False),
    # Unique while the row exists: enqueueing the same key again is a no-op (purge frees it).
    Column("dedupe_key", String(255), nullable=True, unique=True),
    Column("progress", Float(), nullable=True),
    Column("progress_message", Text(), nullable=True),
    Column("result", JSONType(), nullable=True),
    Column("cancel_requested", Boolean(), nullable=False, default=False, server_default=false()),
    Column("cancelled_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    # W3C trace context of the span that enqueued it (``traceparent``...), when tracing is on.
    Column("trace_context", JSONType(), nullable=True),
)
_pending = text(f"status = '{PENDING}'")
_finished = text(f"status <> '{PENDING}'")
Index(
    "ix_cqrs_background_jobs_claim_order",
    jobs_table.c.priority.desc(),
    jobs_table.c.id,
    postgresql_where=_pending,
    sqlite_where=_pending,
)
Index(
    "ix_cqrs_background_jobs_finished",
    jobs_table.c.status,
    jobs_table.c.finished_at,
    postgresql_where=_finished,
    sqlite_where=_finished,
)
