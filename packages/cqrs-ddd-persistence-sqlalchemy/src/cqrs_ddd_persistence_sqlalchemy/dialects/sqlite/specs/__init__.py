"""SQLite's specification operators: JSON1 (:mod:`.json`), case-sensitive LIKE through GLOB
(:mod:`.text`), the full text fallback (:mod:`.fts`) and SpatiaLite (:mod:`.geometry`), exposed
as ``SqliteDialect.spec_operators`` and ``SqliteDialect.json_access``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import JsonAccess, OperatorFn
from cqrs_ddd_persistence_sqlalchemy.dialects.sqlite.specs import fts, geometry, json, text
from cqrs_ddd_specifications import Operator

__all__ = ["JSON_ACCESS", "OPERATORS"]

#: Every SQLite-specific operator (read-only: override through a registry).
OPERATORS: Mapping[Operator, OperatorFn] = MappingProxyType(
    {**json.OPERATORS, **text.OPERATORS, **fts.OPERATORS, **geometry.OPERATORS}
)
#: How SQLite reads inside JSON documents.
JSON_ACCESS: JsonAccess = json.SqliteJson()
