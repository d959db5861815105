"""The projection checkpoints table: one row per projection (a cursor into the global log).

Collection tables (the read models themselves) are user data: they live on a ``MetaData`` of
the projection store, not here.
"""

from __future__ import annotations

import sqlalchemy as sa

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = ["projection_positions_table"]

projection_positions_table = sa.Table(
    "projection_positions",
    metadata,
    sa.Column("projection", sa.String(200), primary_key=True),
    sa.Column("cursor", sa.Text(), nullable=True),
    sa.Column("position", sa.BigInteger(), nullable=True),
    sa.Column("events_processed", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    comment="One checkpoint per projection (cursor into the global event log).",
)
