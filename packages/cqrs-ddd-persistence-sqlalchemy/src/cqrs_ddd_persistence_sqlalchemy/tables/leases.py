"""The leases table: one row per singleton role (a projection's runner, any leader election).

A row is never deleted: its ``token`` only grows (every holder gets a new one), so a write
fenced by an old token is refused for ever. ``expires_at`` is written with the database's clock
only; a lease is free when ``expires_at`` is past.
"""

from __future__ import annotations

import sqlalchemy as sa

from cqrs_ddd_persistence_sqlalchemy.schema import metadata
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = ["leases_table"]

leases_table = sa.Table(
    "cqrs_leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("token", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    comment="Fenced leases of singleton work (one holder per name; the token only grows).",
)
