"""Projections (public facade): the read-model store, the checkpoint store and the runner.

The implementation lives in :mod:`cqrs_ddd_persistence_sqlalchemy.projections`; this module
keeps the import path of earlier releases working.

Example:
    >>> from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
    >>> projection_store = SQLAlchemyProjectionStore(session_factory)
    >>> await projection_store.upsert(collection="order_summaries", doc_id="123",
    ...                               doc={"order_id": "123", "total": 99.99})
"""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.projections import ProjectionRunner as ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.projections import (
    SQLAlchemyProjectionPositionStore as SQLAlchemyProjectionPositionStore,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    SQLAlchemyProjectionStore as SQLAlchemyProjectionStore,
)
from cqrs_ddd_persistence_sqlalchemy.projections import (
    projection_positions_table as projection_positions_table,
)

__all__ = [
    "ProjectionRunner",
    "SQLAlchemyProjectionPositionStore",
    "SQLAlchemyProjectionStore",
    "projection_positions_table",
]
