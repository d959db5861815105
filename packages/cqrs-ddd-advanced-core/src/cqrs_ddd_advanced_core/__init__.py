"""cqrs-ddd-advanced-core: persistence-free sagas, projections, snapshots, jobs and scheduling."""

from cqrs_ddd_advanced_core.jobs import BackgroundJob as BackgroundJob
from cqrs_ddd_advanced_core.jobs import Backoff as Backoff
from cqrs_ddd_advanced_core.jobs import JobContext as JobContext
from cqrs_ddd_advanced_core.jobs import JobStatus as JobStatus
from cqrs_ddd_advanced_core.projections import ErrorPolicy as ErrorPolicy
from cqrs_ddd_advanced_core.projections import FieldType as FieldType
from cqrs_ddd_advanced_core.projections import Projection as Projection
from cqrs_ddd_advanced_core.projections import ProjectionContext as ProjectionContext
from cqrs_ddd_advanced_core.projections import ProjectionField as ProjectionField
from cqrs_ddd_advanced_core.projections import (
    ProjectionHandlerError as ProjectionHandlerError,
)
from cqrs_ddd_advanced_core.projections import ProjectionSchema as ProjectionSchema
from cqrs_ddd_advanced_core.sagas import SagaOrchestrator as SagaOrchestrator
from cqrs_ddd_advanced_core.sagas import SagaState as SagaState
from cqrs_ddd_advanced_core.sagas import SagaStatus as SagaStatus
from cqrs_ddd_advanced_core.sagas import saga_step as saga_step
from cqrs_ddd_advanced_core.scheduling import CronSchedule as CronSchedule
from cqrs_ddd_advanced_core.scheduling import PeriodicCommand as PeriodicCommand
from cqrs_ddd_advanced_core.scheduling import ScheduledCommand as ScheduledCommand
from cqrs_ddd_advanced_core.scheduling import (
    ScheduledCommandStatus as ScheduledCommandStatus,
)
from cqrs_ddd_advanced_core.snapshots import EveryNEvents as EveryNEvents
from cqrs_ddd_advanced_core.snapshots import Snapshot as Snapshot
from cqrs_ddd_advanced_core.snapshots import SnapshotStrategy as SnapshotStrategy

__version__ = "0.1.0"
