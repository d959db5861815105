"""Advanced patterns: sagas, projections, snapshots, background jobs, command scheduling."""

from cqrs_ddd_persistence_sqlalchemy.advanced.job_worker import JobWorker as JobWorker
from cqrs_ddd_persistence_sqlalchemy.advanced.jobs import ClaimedJob as ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.advanced.jobs import (
    SQLAlchemyBackgroundJobRepository as SQLAlchemyBackgroundJobRepository,
)
from cqrs_ddd_persistence_sqlalchemy.advanced.sagas import (
    SagaRecoveryWorker as SagaRecoveryWorker,
)
from cqrs_ddd_persistence_sqlalchemy.advanced.sagas import (
    SQLAlchemySagaRepository as SQLAlchemySagaRepository,
)
from cqrs_ddd_persistence_sqlalchemy.advanced.scheduler import (
    SchedulerWorker as SchedulerWorker,
)
from cqrs_ddd_persistence_sqlalchemy.advanced.scheduler import (
    SQLAlchemyCommandScheduler as SQLAlchemyCommandScheduler,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    ProjectionRunner as ProjectionRunner,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    SQLAlchemyProjectionPositionStore as SQLAlchemyProjectionPositionStore,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    SQLAlchemyProjectionStore as SQLAlchemyProjectionStore,
)
from cqrs_ddd_persistence_sqlalchemy.snapshots import (
    SQLAlchemySnapshotStore as SQLAlchemySnapshotStore,
)
