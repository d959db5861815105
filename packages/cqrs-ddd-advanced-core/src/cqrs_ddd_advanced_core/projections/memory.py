"""``InMemoryProjectionStore``: the projection store's semantics without a database.

For unit tests of projection handlers: the same guards as the SQL store (a version must be
newer; a write naming the event last applied to a document is refused), the same result shapes
(documents with ``_id``, ``_version``, ``_last_event_id``, ``_last_position``; typed rows with
their fields) and specifications evaluated in memory. There are no transactions: ``uow=`` is
accepted and ignored, every write applies at once.

Example:
    >>> store = InMemoryProjectionStore()
    >>> ctx = ProjectionContext("orders", store, event)
    >>> await my_handler(event, ctx)
    >>> await store.get("order_summaries", event.aggregate_id)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cqrs_ddd_core.errors import ConfigurationError, InvalidValueError, MappingError, suggest
from cqrs_ddd_specifications import QueryOptions, Specification, apply_options, evaluate

from .ports import DocumentWrite
from .schema import RESERVED_FIELDS, ProjectionSchema, validate_identifier

__all__ = ["InMemoryProjectionStore"]


class InMemoryProjectionStore:
    """Projection collections in dicts (see module docstring)."""

    def __init__(self, *, schemas: Mapping[str, ProjectionSchema] | None = None) -> None:
        self._schemas: dict[str, ProjectionSchema] = {}
        self._rows: dict[str, dict[Any, dict[str, Any]]] = {}
        for name, schema in (schemas or {}).items():
            self.register(name, schema)

    def register(self, name: str, schema: ProjectionSchema) -> None:
        validate_identifier(name, what="collection name")
        current = self._schemas.get(name)
        if current is not None and current != schema:
            raise ConfigurationError(
                f"collection {name!r} is already registered with another schema"
            )
        self._schemas[name] = schema

    def _rows_of(self, name: str) -> dict[Any, dict[str, Any]]:
        validate_identifier(name, what="collection name")
        return self._rows.setdefault(name, {})

    async def ensure_collection(
        self, name: str, *, schema: ProjectionSchema | None = None, uow: Any = None
    ) -> None:
        if schema is not None:
            self.register(name, schema)
        self._rows_of(name)

    async def upsert(
        self,
        collection: str,
        doc_id: Any = None,
        doc: Mapping[str, Any] | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        version: int | None = None,
        event_id: str | None = None,
        position: int | None = None,
        uow: Any = None,
    ) -> bool:
        if doc is not None and data is not None and doc is not data:
            raise ConfigurationError("pass the document as doc= or data=, not both")
        body = doc if doc is not None else data
        if body is None:
            raise ConfigurationError("upsert needs the document (doc= or data=)")
        write = DocumentWrite(
            doc_id=doc_id, doc=body, version=version, event_id=event_id, position=position
        )
        return await self.upsert_many(collection, [write]) == 1

    async def upsert_many(
        self, collection: str, docs: Sequence[DocumentWrite], *, uow: Any = None
    ) -> int:
        rows = self._rows_of(collection)
        return sum(self._apply(collection, rows, write) for write in docs)

    def _apply(
        self, collection: str, rows: dict[Any, dict[str, Any]], write: DocumentWrite
    ) -> bool:
        if not isinstance(write.doc, Mapping):
            raise InvalidValueError(
                f"collection {collection!r}: a document is a mapping, "
                f"got {type(write.doc).__name__}"
            )
        body = copy.deepcopy(dict(write.doc))
        embedded = body.pop("_version", None)
        for reserved in RESERVED_FIELDS:
            body.pop(reserved, None)
        version = write.version if write.version is not None else embedded
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 0
        ):
            raise InvalidValueError(f"document version must be a non-negative int, got {version!r}")
        schema = self._schemas.get(collection)
        key = "id" if schema is None else schema.id_field
        doc_id = write.doc_id if write.doc_id is not None else body.get(key)
        if doc_id is None:
            raise InvalidValueError(f"collection {collection!r}: no doc_id and no {key!r} field")
        if schema is None:
            doc_id = str(doc_id)
            content: dict[str, Any] = body
        else:
            if key in body and body[key] != doc_id:
                raise MappingError(
                    f"collection {collection!r}: doc_id {doc_id!r} differs from field {key!r}",
                    field=key,
                )
            unknown = [k for k in body if k not in schema.names]
            if unknown:
                hints = suggest(unknown[0], schema.names)
                hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
                raise MappingError(
                    f"collection {collection!r} has no field {unknown[0]!r}{hint}",
                    field=unknown[0],
                )
            content = {name: body.get(name) for name in schema.names}
            content[key] = doc_id
        current = rows.get(doc_id)
        if current is not None:
            if version is not None:
                if current["_version"] >= version:
                    return False
            elif write.event_id is not None and current["_last_event_id"] == write.event_id:
                return False
        new_version = (
            version if version is not None else (current["_version"] + 1 if current else 1)
        )
        rows[doc_id] = {
            "content": content,
            "_version": new_version,
            "_last_event_id": write.event_id,
            "_last_position": write.position,
        }
        return True

    def _shape(self, collection: str, doc_id: Any, row: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = copy.deepcopy(row["content"])
        if collection not in self._schemas:
            result["_id"] = doc_id
        result["_version"] = row["_version"]
        result["_last_event_id"] = row["_last_event_id"]
        result["_last_position"] = row["_last_position"]
        return result

    def _candidate(self, collection: str, doc_id: Any, row: dict[str, Any]) -> dict[str, Any]:
        # what a specification sees: the document's fields plus the table's columns
        candidate = self._shape(collection, doc_id, row)
        if collection not in self._schemas:
            candidate.setdefault("id", doc_id)
        return candidate

    async def get(self, collection: str, doc_id: Any, *, uow: Any = None) -> dict[str, Any] | None:
        rows = self._rows_of(collection)
        key = str(doc_id) if collection not in self._schemas else doc_id
        row = rows.get(key)
        return None if row is None else self._shape(collection, key, row)

    async def get_many(
        self, collection: str, doc_ids: Iterable[Any], *, uow: Any = None
    ) -> dict[Any, dict[str, Any]]:
        found = {}
        for doc_id in doc_ids:
            doc = await self.get(collection, doc_id)
            if doc is not None:
                found[str(doc_id) if collection not in self._schemas else doc_id] = doc
        return found

    async def find(
        self,
        collection: str,
        spec: Specification | Mapping[str, Any] | None = None,
        options: QueryOptions | Mapping[str, Any] | None = None,
        *,
        uow: Any = None,
    ) -> list[dict[str, Any]]:
        rows = self._rows_of(collection)
        if isinstance(spec, Mapping):
            spec = Specification.from_dict(spec)
        matches = [
            (self._candidate(collection, doc_id, row), doc_id, row)
            for doc_id, row in rows.items()
            if spec is None or evaluate(spec, self._candidate(collection, doc_id, row))
        ]
        candidates = [m[0] for m in matches]
        if options is not None:
            opts = QueryOptions.from_dict(options) if isinstance(options, Mapping) else options
            schema = self._schemas.get(collection)
            tiebreaker = "id" if schema is None else schema.id_field
            candidates = apply_options(candidates, opts, tiebreaker=tiebreaker)
            if opts.select_fields:
                return [{f: c.get(f) for f in opts.select_fields} for c in candidates]
        if collection not in self._schemas:
            for c in candidates:
                if c.get("id") == c.get("_id") and "id" not in rows[c["_id"]]["content"]:
                    del c["id"]
        return candidates

    async def find_one(
        self,
        collection: str,
        doc_id: Any = None,
        *,
        spec: Specification | Mapping[str, Any] | None = None,
        uow: Any = None,
    ) -> dict[str, Any] | None:
        if doc_id is not None:
            return await self.get(collection, doc_id)
        if spec is None:
            raise ConfigurationError("find_one needs doc_id= or spec=")
        found = await self.find(collection, spec, QueryOptions(limit=1))
        return found[0] if found else None

    async def count(
        self,
        collection: str,
        spec: Specification | Mapping[str, Any] | None = None,
        *,
        uow: Any = None,
    ) -> int:
        return len(await self.find(collection, spec))

    async def delete(self, collection: str, doc_id: Any, *, uow: Any = None) -> bool:
        rows = self._rows_of(collection)
        key = str(doc_id) if collection not in self._schemas else doc_id
        return rows.pop(key, None) is not None

    async def truncate(self, collection: str, *, uow: Any = None) -> None:
        self._rows_of(collection).clear()
