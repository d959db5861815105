"""Inbox: cqrs_inbox, the idempotent-consumer record of SQLAlchemyInbox.

Generated with ``alembic revision --autogenerate`` on a database at 0001; only the
``cqrs_inbox`` commands were kept (on SQLite autogenerate also lists JSON columns reflected as
TEXT, which are not changes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 06:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cqrs_ddd_persistence_sqlalchemy.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cqrs_inbox",
        sa.Column("consumer", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column(
            "handled_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_cqrs_inbox")),
    )
    op.create_index("ix_cqrs_inbox_handled_at", "cqrs_inbox", ["handled_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cqrs_inbox_handled_at", table_name="cqrs_inbox")
    op.drop_table("cqrs_inbox")
