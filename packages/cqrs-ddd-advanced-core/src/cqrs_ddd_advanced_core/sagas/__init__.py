"""Sagas: long-running processes with compensation (persistence-free).

Example::

    from cqrs_ddd_advanced_core.sagas import SagaOrchestrator, saga_step
    from cqrs_ddd_advanced_core.sagas.state import SagaState
"""

from cqrs_ddd_advanced_core.sagas.memory import InMemorySagaRepository as InMemorySagaRepository
from cqrs_ddd_advanced_core.sagas.orchestrator import SagaOrchestrator as SagaOrchestrator
from cqrs_ddd_advanced_core.sagas.ports import ISagaRepository as ISagaRepository
from cqrs_ddd_advanced_core.sagas.state import SAGA_FIELDS as SAGA_FIELDS
from cqrs_ddd_advanced_core.sagas.state import SagaState as SagaState
from cqrs_ddd_advanced_core.sagas.state import SagaStatus as SagaStatus
from cqrs_ddd_advanced_core.sagas.step import StepSpec as StepSpec
from cqrs_ddd_advanced_core.sagas.step import saga_step as saga_step
