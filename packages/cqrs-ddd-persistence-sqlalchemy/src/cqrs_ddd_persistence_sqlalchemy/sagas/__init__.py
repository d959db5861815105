"""Saga state with optimistic concurrency, and saga recovery on the durable queue.

See the "Sagas" section of ``advanced/README.md``; users import these names
from the ``advanced`` facade.
"""

from cqrs_ddd_persistence_sqlalchemy.sagas.overview import (
    count_sagas_by_type as count_sagas_by_type,
)
from cqrs_ddd_persistence_sqlalchemy.sagas.recovery import (
    SagaRecoveryWorker as SagaRecoveryWorker,
)
from cqrs_ddd_persistence_sqlalchemy.sagas.repository import (
    SQLAlchemySagaRepository as SQLAlchemySagaRepository,
)
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table as sagas_table

__all__ = [
    "SQLAlchemySagaRepository",
    "SagaRecoveryWorker",
    "count_sagas_by_type",
    "sagas_table",
]
