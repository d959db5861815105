"""Kept for migration files generated before the tables moved (they import
``cqrs_ddd_persistence_sqlalchemy.core.event_tables`` for ``Xid8``): use
``cqrs_ddd_persistence_sqlalchemy.types.Xid8`` and ``cqrs_ddd_persistence_sqlalchemy.tables``."""

from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table as events_table
from cqrs_ddd_persistence_sqlalchemy.tables.events import (
    stream_tombstones_table as stream_tombstones_table,
)
from cqrs_ddd_persistence_sqlalchemy.types.xid8 import Xid8 as Xid8
from cqrs_ddd_persistence_sqlalchemy.types.xid8 import current_xact_id as current_xact_id

__all__ = ["Xid8", "current_xact_id", "events_table", "stream_tombstones_table"]
