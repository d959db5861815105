"""PostgreSQL operators: JSONB, full text search, PostGIS."""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.specifications.registry import SQLAlchemyOperatorRegistry

from . import fts, geometry, json

__all__ = ["register"]


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register every PostgreSQL-specific operator on ``registry``."""
    json.register(registry)
    fts.register(registry)
    geometry.register(registry)
