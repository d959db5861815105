"""The library's tables, one module per table (all on ``schema.metadata``).

Importing this package registers every library table on
:data:`cqrs_ddd_persistence_sqlalchemy.schema.metadata`.
"""

from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table as events_table
from cqrs_ddd_persistence_sqlalchemy.tables.events import (
    stream_tombstones_table as stream_tombstones_table,
)
from cqrs_ddd_persistence_sqlalchemy.tables.inbox import inbox_table as inbox_table
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table as jobs_table
from cqrs_ddd_persistence_sqlalchemy.tables.leases import leases_table as leases_table
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table as outbox_table
from cqrs_ddd_persistence_sqlalchemy.tables.projections import (
    projection_positions_table as projection_positions_table,
)
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table as sagas_table
from cqrs_ddd_persistence_sqlalchemy.tables.scheduled import (
    scheduled_commands_table as scheduled_commands_table,
)
from cqrs_ddd_persistence_sqlalchemy.tables.snapshots import snapshots_table as snapshots_table

__all__ = [
    "events_table",
    "inbox_table",
    "jobs_table",
    "leases_table",
    "outbox_table",
    "projection_positions_table",
    "sagas_table",
    "scheduled_commands_table",
    "snapshots_table",
    "stream_tombstones_table",
]
