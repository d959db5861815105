"""Background jobs (persistence-free model): job base class, statuses, backoff."""

from cqrs_ddd_advanced_core.jobs.model import JOB_FIELDS as JOB_FIELDS
from cqrs_ddd_advanced_core.jobs.model import BackgroundJob as BackgroundJob
from cqrs_ddd_advanced_core.jobs.model import JobContext as JobContext
from cqrs_ddd_advanced_core.jobs.model import JobStatus as JobStatus
from cqrs_ddd_advanced_core.jobs.retry import Backoff as Backoff
