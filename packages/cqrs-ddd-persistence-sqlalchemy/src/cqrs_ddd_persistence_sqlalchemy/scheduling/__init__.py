"""Scheduled commands on the durable queue: the scheduler and its worker.

See the "Command scheduling" section of ``advanced/README.md``; users import these names
from the ``advanced`` facade.
"""

from cqrs_ddd_persistence_sqlalchemy.scheduling.scheduler import (
    SQLAlchemyCommandScheduler as SQLAlchemyCommandScheduler,
)
from cqrs_ddd_persistence_sqlalchemy.scheduling.worker import (
    SchedulerWorker as SchedulerWorker,
)
from cqrs_ddd_persistence_sqlalchemy.tables.scheduled import (
    scheduled_commands_table as scheduled_commands_table,
)

__all__ = ["SQLAlchemyCommandScheduler", "SchedulerWorker", "scheduled_commands_table"]
