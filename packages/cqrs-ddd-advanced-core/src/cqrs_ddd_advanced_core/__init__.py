"""cqrs-ddd-advanced-core: persistence-free sagas, projections, snapshots, jobs and scheduling."""

from cqrs_ddd_advanced_core.sagas import SagaOrchestrator as SagaOrchestrator
from cqrs_ddd_advanced_core.sagas import SagaState as SagaState
from cqrs_ddd_advanced_core.sagas import SagaStatus as SagaStatus
from cqrs_ddd_advanced_core.sagas import saga_step as saga_step

__version__ = "0.1.0"
