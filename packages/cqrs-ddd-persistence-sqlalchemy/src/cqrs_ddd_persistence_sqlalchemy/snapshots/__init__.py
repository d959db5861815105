"""Aggregate snapshots: the latest states of event-sourced aggregates, upserted, with
retention (see :class:`SQLAlchemySnapshotStore`)."""

from __future__ import annotations

from .store import SQLAlchemySnapshotStore as SQLAlchemySnapshotStore
from .store import snapshots_table as snapshots_table

__all__ = ["SQLAlchemySnapshotStore", "snapshots_table"]
