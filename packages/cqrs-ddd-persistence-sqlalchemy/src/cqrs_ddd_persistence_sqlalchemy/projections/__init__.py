"""Projections on SQLAlchemy: read-model store, checkpoint store and the projection runner.

Example:
    >>> from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemyProjectionStore
    >>> projection_store = SQLAlchemyProjectionStore(session_factory)
    >>> await projection_store.upsert(collection="order_summaries", doc_id="123",
    ...                               doc={"order_id": "123", "total": 99.99})
"""

from __future__ import annotations

from .positions import SQLAlchemyProjectionPositionStore as SQLAlchemyProjectionPositionStore
from .runner import ProjectionRunner as ProjectionRunner
from .store import SQLAlchemyProjectionStore as SQLAlchemyProjectionStore
from .tables import projection_positions_table as projection_positions_table

__all__ = [
    "ProjectionRunner",
    "SQLAlchemyProjectionPositionStore",
    "SQLAlchemyProjectionStore",
    "projection_positions_table",
]
