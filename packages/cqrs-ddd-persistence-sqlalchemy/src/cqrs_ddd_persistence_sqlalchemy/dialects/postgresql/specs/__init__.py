"""PostgreSQL's specification operators: JSONB (:mod:`.json`), full text search (:mod:`.fts`)
and PostGIS (:mod:`.geometry`), exposed as ``PostgresDialect.spec_operators`` and
``PostgresDialect.json_access``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.specs import fts, geometry, json
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import JsonAccess, OperatorFn
from cqrs_ddd_specifications import Operator

__all__ = ["JSON_ACCESS", "OPERATORS"]

#: Every PostgreSQL-specific operator (read-only: override through a registry).
OPERATORS: Mapping[Operator, OperatorFn] = MappingProxyType(
    {**json.OPERATORS, **fts.OPERATORS, **geometry.OPERATORS}
)
#: How PostgreSQL reads inside JSON documents.
JSON_ACCESS: JsonAccess = json.PostgresJson()
