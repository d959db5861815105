"""SQLite operators: JSON1, case-sensitive LIKE via GLOB, full text fallback, SpatiaLite."""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.specifications.registry import SQLAlchemyOperatorRegistry

from . import fts, geometry, json, text

__all__ = ["register"]


def register(registry: SQLAlchemyOperatorRegistry) -> None:
    """Register every SQLite-specific operator on ``registry``."""
    json.register(registry)
    text.register(registry)
    fts.register(registry)
    geometry.register(registry)
