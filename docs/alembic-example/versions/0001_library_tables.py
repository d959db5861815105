"""Library tables: every table of cqrs_ddd_persistence_sqlalchemy.metadata.

Generated with ``alembic revision --autogenerate`` against an empty database, then one edit:
``cqrs_events.txid`` defaults to ``current_xact_id()`` (``pg_current_xact_id()`` on PostgreSQL,
``0`` on SQLite) instead of the PostgreSQL-only text autogenerate renders.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:57:54.386261
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cqrs_ddd_persistence_sqlalchemy.types
from cqrs_ddd_persistence_sqlalchemy.core import event_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cqrs_background_jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "available_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "locked_until",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "finished_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("job_type", sa.String(length=255), nullable=False),
        sa.Column("payload", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("progress_message", sa.Text(), nullable=True),
        sa.Column("result", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=True),
        sa.Column(
            "cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "cancelled_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "updated_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cqrs_background_jobs")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_cqrs_background_jobs_dedupe_key")),
        sa.UniqueConstraint("job_id", name=op.f("uq_cqrs_background_jobs_job_id")),
    )
    op.create_index(
        "ix_cqrs_background_jobs_claim_order",
        "cqrs_background_jobs",
        [sa.literal_column("priority DESC"), "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_cqrs_background_jobs_pending",
        "cqrs_background_jobs",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_cqrs_background_jobs_status_finished",
        "cqrs_background_jobs",
        ["status", "finished_at"],
        unique=False,
    )
    op.create_table(
        "cqrs_event_stream_tombstones",
        sa.Column("stream_id", sa.String(length=255), nullable=False),
        sa.Column(
            "deleted_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("last_version", sa.BigInteger(), nullable=False),
        sa.Column("hard", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_cqrs_event_stream_tombstones")),
    )
    op.create_table(
        "cqrs_events",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("stream_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("aggregate_type", sa.String(length=255), nullable=True),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("payload", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False),
        sa.Column(
            "metadata", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False
        ),
        sa.Column(
            "occurred_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("correlation_id", sa.String(length=255), nullable=True),
        sa.Column("causation_id", sa.String(length=255), nullable=True),
        sa.Column("tenant_id", sa.String(length=255), nullable=True),
        sa.Column(
            "txid",
            event_tables.Xid8(),
            server_default=event_tables.current_xact_id(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_cqrs_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_cqrs_events_event_id")),
        sa.UniqueConstraint("stream_id", "version", name=op.f("uq_cqrs_events_stream_id_version")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_cqrs_events_txid_position"), "cqrs_events", ["txid", "position"], unique=False
    )
    op.create_table(
        "cqrs_sagas",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "available_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "locked_until",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "finished_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("saga_id", sa.String(length=64), nullable=False),
        sa.Column("saga_type", sa.String(length=255), nullable=False),
        sa.Column("correlation_id", sa.String(length=255), nullable=True),
        sa.Column("saga_status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("waiting_for", sa.String(length=255), nullable=True),
        sa.Column(
            "timeout_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("state", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False),
        sa.Column(
            "updated_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cqrs_sagas")),
        sa.UniqueConstraint("saga_id", name=op.f("uq_cqrs_sagas_saga_id")),
        sa.UniqueConstraint(
            "saga_type", "correlation_id", name=op.f("uq_cqrs_sagas_saga_type_correlation_id")
        ),
    )
    op.create_index(
        "ix_cqrs_sagas_pending",
        "cqrs_sagas",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_cqrs_sagas_saga_type_saga_status",
        "cqrs_sagas",
        ["saga_type", "saga_status"],
        unique=False,
    )
    op.create_index(
        "ix_cqrs_sagas_status_finished", "cqrs_sagas", ["status", "finished_at"], unique=False
    )
    op.create_table(
        "cqrs_scheduled_commands",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "available_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "locked_until",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "finished_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("command_type", sa.String(length=255), nullable=False),
        sa.Column("payload", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column(
            "cancelled_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cqrs_scheduled_commands")),
        sa.UniqueConstraint("key", name=op.f("uq_cqrs_scheduled_commands_key")),
    )
    op.create_index(
        "ix_cqrs_scheduled_commands_pending",
        "cqrs_scheduled_commands",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_cqrs_scheduled_commands_status_finished",
        "cqrs_scheduled_commands",
        ["status", "finished_at"],
        unique=False,
    )
    op.create_table(
        "cqrs_snapshots",
        sa.Column("aggregate_type", sa.String(length=255), nullable=False),
        sa.Column("aggregate_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("state", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False),
        sa.Column(
            "created_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "aggregate_type", "aggregate_id", "version", name=op.f("pk_cqrs_snapshots")
        ),
    )
    op.create_table(
        "outbox_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "available_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "locked_until",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "finished_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("partition_key", sa.String(length=255), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("payload", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False),
        sa.Column(
            "metadata", cqrs_ddd_persistence_sqlalchemy.types.json.JSONType(), nullable=False
        ),
        sa.Column("correlation_id", sa.String(length=255), nullable=True),
        sa.Column("causation_id", sa.String(length=255), nullable=True),
        sa.Column("tenant_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_messages_message_id")),
    )
    op.create_index(
        "ix_outbox_messages_key",
        "outbox_messages",
        ["partition_key", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_outbox_messages_pending",
        "outbox_messages",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_outbox_messages_status_finished",
        "outbox_messages",
        ["status", "finished_at"],
        unique=False,
    )
    op.create_table(
        "projection_positions",
        sa.Column("projection", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("events_processed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            cqrs_ddd_persistence_sqlalchemy.types.datetime.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("projection", name=op.f("pk_projection_positions")),
        comment="One checkpoint per projection (cursor into the global event log).",
    )


def downgrade() -> None:
    op.drop_table("projection_positions")
    op.drop_index("ix_outbox_messages_status_finished", table_name="outbox_messages")
    op.drop_index(
        "ix_outbox_messages_pending",
        table_name="outbox_messages",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_outbox_messages_key",
        table_name="outbox_messages",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("outbox_messages")
    op.drop_table("cqrs_snapshots")
    op.drop_index(
        "ix_cqrs_scheduled_commands_status_finished", table_name="cqrs_scheduled_commands"
    )
    op.drop_index(
        "ix_cqrs_scheduled_commands_pending",
        table_name="cqrs_scheduled_commands",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("cqrs_scheduled_commands")
    op.drop_index("ix_cqrs_sagas_status_finished", table_name="cqrs_sagas")
    op.drop_index("ix_cqrs_sagas_saga_type_saga_status", table_name="cqrs_sagas")
    op.drop_index(
        "ix_cqrs_sagas_pending",
        table_name="cqrs_sagas",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("cqrs_sagas")
    op.drop_index(op.f("ix_cqrs_events_txid_position"), table_name="cqrs_events")
    op.drop_table("cqrs_events")
    op.drop_table("cqrs_event_stream_tombstones")
    op.drop_index("ix_cqrs_background_jobs_status_finished", table_name="cqrs_background_jobs")
    op.drop_index(
        "ix_cqrs_background_jobs_pending",
        table_name="cqrs_background_jobs",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_cqrs_background_jobs_claim_order",
        table_name="cqrs_background_jobs",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("cqrs_background_jobs")
