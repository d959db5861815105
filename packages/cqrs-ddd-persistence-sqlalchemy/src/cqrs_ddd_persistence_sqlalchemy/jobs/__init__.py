"""Background jobs on the durable queue: the repository and the worker.

See the "Background jobs" section of ``advanced/README.md``; users import these names
from the ``advanced`` facade.
"""

from cqrs_ddd_persistence_sqlalchemy.jobs.repository import ClaimedJob as ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.jobs.repository import (
    SQLAlchemyBackgroundJobRepository as SQLAlchemyBackgroundJobRepository,
)
from cqrs_ddd_persistence_sqlalchemy.jobs.worker import JobHandler as JobHandler
from cqrs_ddd_persistence_sqlalchemy.jobs.worker import JobWorker as JobWorker
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table as jobs_table

__all__ = [
    "ClaimedJob",
    "JobHandler",
    "JobWorker",
    "SQLAlchemyBackgroundJobRepository",
    "jobs_table",
]
