"""Advanced patterns: sagas, projections, snapshots, background jobs, command scheduling,
fenced leases (leader election)."""

from cqrs_ddd_persistence_sqlalchemy.jobs import ClaimedJob as ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker as JobWorker
from cqrs_ddd_persistence_sqlalchemy.jobs import (
    SQLAlchemyBackgroundJobRepository as SQLAlchemyBackgroundJobRepository,
)
from cqrs_ddd_persistence_sqlalchemy.leases import Lease as Lease
from cqrs_ddd_persistence_sqlalchemy.projections import (
    ProjectionRunner as ProjectionRunner,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    SQLAlchemyProjectionPositionStore as SQLAlchemyProjectionPositionStore,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    SQLAlchemyProjectionStore as SQLAlchemyProjectionStore,
)
from cqrs_ddd_persistence_sqlalchemy.sagas import (
    SagaRecoveryWorker as SagaRecoveryWorker,
)
from cqrs_ddd_persistence_sqlalchemy.sagas import (
    SQLAlchemySagaRepository as SQLAlchemySagaRepository,
)
from cqrs_ddd_persistence_sqlalchemy.scheduling import (
    SchedulerWorker as SchedulerWorker,
)
from cqrs_ddd_persistence_sqlalchemy.scheduling import (
    SQLAlchemyCommandScheduler as SQLAlchemyCommandScheduler,
)
from cqrs_ddd_persistence_sqlalchemy.snapshots import (
    SQLAlchemySnapshotStore as SQLAlchemySnapshotStore,
)
