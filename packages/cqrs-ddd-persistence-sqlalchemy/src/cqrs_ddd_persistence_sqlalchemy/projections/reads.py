"""Reads of the projection store: statements by id, search filters, rows as documents.

Searches compile their specification for the dialect of the connection they run on: on a
document collection a field that is not a column is a key path into the JSON document, which
each dialect reads its own way, and only a filter built for its dialect is a statement
SQLAlchemy can cache (one shape is compiled once, not on every call).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_specifications import Specification

from .catalog import Collection

__all__ = ["ReadStatements", "compile_filter", "into_document", "to_document"]

#: Ids per statement of ``get_many``.
IDS_PER_STATEMENT = 10_000


class ReadStatements:
    """Statements by id of a store's collections, built once (kept)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Any] = {}
        self._by_ids: dict[tuple[str, DialectSupport], Any] = {}

    def by_id(self, coll: Collection) -> Any:
        """``SELECT * … WHERE key = :doc_id``."""
        stmt = self._by_id.get(coll.name)
        if stmt is None:
            t = coll.table
            stmt = self._by_id[coll.name] = kept(
                sa.select(t).where(t.c[coll.key] == sa.bindparam("doc_id"))
            )
        return stmt

    def by_ids(self, dialect: DialectSupport, coll: Collection) -> Any:
        """``SELECT * … WHERE key is one of :doc_ids`` (a list parameter)."""
        stmt = self._by_ids.get((coll.name, dialect))
        if stmt is None:
            t = coll.table
            stmt = self._by_ids[(coll.name, dialect)] = kept(
                sa.select(t).where(dialect.one_of(t.c[coll.key], "doc_ids"))
            )
        return stmt


def compile_filter(
    support: DialectSupport, coll: Collection, spec: Specification | Mapping[str, Any]
) -> sa.ColumnElement[bool]:
    """``spec`` compiled for the dialect of ``support`` on the columns (and, for a document
    collection, the document keys) of ``coll``."""
    tree = spec.to_dict() if isinstance(spec, Specification) else dict(spec)
    if coll.schema is None:
        tree = into_document(tree, coll.columns)
    return build_sqla_filter(coll.model, tree, dialect=support.name)


def into_document(node: dict[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """Rewrite leaf fields that are not columns of a document table into ``doc.<field>``."""
    if "conditions" in node:
        return {**node, "conditions": [into_document(c, columns) for c in node["conditions"]]}
    if "condition" in node and isinstance(node["condition"], dict):
        return {**node, "condition": into_document(node["condition"], columns)}
    attr = node.get("attr")
    if isinstance(attr, str) and attr.split(".", 1)[0] not in columns:
        return {**node, "attr": f"doc.{attr}"}
    return node


def to_document(coll: Collection, row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as the store returns it: a document with its bookkeeping keys (``_id``,
    ``_version``, ``_last_event_id``, ``_last_position``), or a typed row's columns."""
    if coll.schema is None:
        doc = row["doc"]
        result = dict(doc) if isinstance(doc, Mapping) else {"value": doc}
        result["_id"] = row["id"]
        result["_version"] = row["_version"]
        result["_last_event_id"] = row["_last_event_id"]
        result["_last_position"] = row["_last_position"]
        return result
    return {k: v for k, v in row.items() if k != "_updated_at"}
