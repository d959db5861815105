"""Writes of the projection store: rows from documents, the guarded upsert, batching, and the
preview the runner's write buffer reads its own pending writes through.

Every write is one ``INSERT … ON CONFLICT (id) DO UPDATE … WHERE <guard>`` statement (the
dialect's ``insert``), so two writers never interleave a read and a write:

- with a version (``version=`` or a ``"_version"`` key in the document) the guard is
  ``t._version < EXCLUDED._version``: an older or repeated version is refused;
- without one, ``_version`` is incremented and, when the write names an event
  (``event_id=``), the guard ``t._last_event_id IS DISTINCT FROM EXCLUDED._last_event_id``
  makes re-applying the same event to the same document a no-op.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_advanced_core.projections import DocumentWrite
from cqrs_ddd_advanced_core.projections.schema import RESERVED_FIELDS
from cqrs_ddd_core.errors import InvalidValueError, MappingError, suggest
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads

from .catalog import Collection

__all__ = ["WriteStatements", "document_row", "plan", "preview"]

#: Rows per executemany (SQLAlchemy pages them into multi-row VALUES within driver limits).
CHUNK = 5_000

#: A row to write and whether it is versioned (guarded by ``_version``).
Row = tuple[bool, dict[str, Any]]


def document_row(coll: Collection, write: DocumentWrite, now: datetime) -> Row:
    """The row ``write`` stores in ``coll`` (validated), and whether it is versioned."""
    if not isinstance(write.doc, Mapping):
        raise InvalidValueError(
            f"collection {coll.name!r}: a document is a mapping, got {type(write.doc).__name__}"
        )
    body = dict(write.doc)
    version = write.version
    embedded = body.pop("_version", None)
    for reserved in RESERVED_FIELDS:
        body.pop(reserved, None)
    if version is None:
        version = embedded
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 0
    ):
        raise InvalidValueError(f"document version must be a non-negative int, got {version!r}")
    key = coll.key
    doc_id = write.doc_id if write.doc_id is not None else body.get(key)
    if doc_id is None:
        raise InvalidValueError(f"collection {coll.name!r}: no doc_id and no {key!r} field")
    bookkeeping = {
        "_version": version if version is not None else 1,
        "_last_event_id": write.event_id,
        "_last_position": write.position,
        "_updated_at": now,
    }
    if coll.schema is None:
        if not isinstance(doc_id, str | int) or isinstance(doc_id, bool):
            doc_id = str(doc_id)
        return version is not None, {"id": str(doc_id), "doc": body, **bookkeeping}
    if key in body and body[key] != doc_id:
        raise MappingError(
            f"collection {coll.name!r}: doc_id {doc_id!r} differs from field "
            f"{key!r} = {body[key]!r}",
            field=key,
        )
    names = coll.schema.names
    unknown = [k for k in body if k not in names]
    if unknown:
        hints = suggest(unknown[0], names)
        hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
        raise MappingError(
            f"collection {coll.name!r} has no field {unknown[0]!r}{hint}", field=unknown[0]
        )
    row = {name: body.get(name) for name in names}
    row[key] = doc_id
    row.update(bookkeeping)
    return version is not None, row


def plan(rows: list[Row], key: str) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
    """Group writes into statements that touch each id at most once.

    Consecutive writes of one mode to one id coalesce into one row: plain writes into the last
    document with ``_version`` = how many writes it stands for (the statement adds it; a repeated
    write of the same event is dropped, as the guard would refuse it), versioned writes into the
    first one with the highest version (the others would have been refused).
    Each id's remaining segments go to later statements, so per-id order is kept.
    """
    per_id: dict[Any, list[list[Any]]] = {}
    for versioned, row in rows:
        segments = per_id.setdefault(row[key], [])
        last = segments[-1] if segments else None
        if last is not None and last[0] == versioned:
            if not versioned:
                event_id = row.get("_last_event_id")
                if event_id is not None and event_id == last[1].get("_last_event_id"):
                    continue  # the guard refuses a second write of one event to one document
                last[1], last[2] = row, last[2] + 1
            elif row["_version"] > last[1]["_version"]:
                last[1] = row
        else:
            segments.append([versioned, row, 1])
    depth = max(len(segments) for segments in per_id.values())
    for index in range(depth):
        plain: list[dict[str, Any]] = []
        guarded: list[dict[str, Any]] = []
        for segments in per_id.values():
            if index < len(segments):
                versioned, row, count = segments[index]
                if versioned:
                    guarded.append(row)
                else:
                    plain.append({**row, "_version": count})
        for versioned, batch in ((False, plain), (True, guarded)):
            for start in range(0, len(batch), CHUNK):
                yield versioned, batch[start : start + CHUNK]


class WriteStatements:
    """The write statements of a store's collections, built once per collection (and mode and
    dialect): kept, so compiled once and eligible for the execution seam's fast path."""

    def __init__(self) -> None:
        self._upserts: dict[tuple[str, bool, DialectSupport], Any] = {}
        self._deletes: dict[str, Any] = {}

    def upsert(self, dialect: DialectSupport, coll: Collection, versioned: bool) -> Any:
        """``INSERT … ON CONFLICT (key) DO UPDATE … WHERE <guard> RETURNING key``."""
        cache_key = (coll.name, versioned, dialect)
        built = self._upserts.get(cache_key)
        if built is None:
            built = self._upserts[cache_key] = kept(_upsert(dialect, coll, versioned))
        return built

    def delete(self, coll: Collection) -> Any:
        """``DELETE … WHERE key = :doc_id RETURNING key``."""
        built = self._deletes.get(coll.name)
        if built is None:
            t = coll.table
            key = t.c[coll.key]
            built = self._deletes[coll.name] = kept(
                sa.delete(t).where(key == sa.bindparam("doc_id")).returning(key)
            )
        return built


def _upsert(dialect: DialectSupport, coll: Collection, versioned: bool) -> Any:
    t = coll.table
    ins = dialect.insert(t)
    excluded = ins.excluded
    key = t.c[coll.key]
    set_: dict[str, Any] = {
        c.name: excluded[c.name] for c in t.columns if c.name not in (coll.key, "_version")
    }
    if versioned:
        set_["_version"] = excluded["_version"]
        guard: sa.ColumnElement[bool] = t.c._version < excluded["_version"]
    else:
        # a plain row's _version is the number of writes it stands for (see plan)
        set_["_version"] = t.c._version + excluded["_version"]
        guard = sa.or_(
            excluded["_last_event_id"].is_(None),
            t.c._last_event_id.is_distinct_from(excluded["_last_event_id"]),
        )
    return ins.on_conflict_do_update(index_elements=[key], set_=set_, where=guard).returning(key)


def preview(
    coll: Collection | None,
    doc_id: Any,
    base: dict[str, Any] | None,
    writes: Sequence[DocumentWrite],
) -> tuple[bool, dict[str, Any] | None]:
    """What a read of ``doc_id`` would return after ``writes`` on top of ``base`` (an earlier
    read), without the database; ``(False, None)`` when unsure.

    Only document collections and plain (unversioned) writes are previewed; values go through
    the JSON codec, as they would through the database.
    """
    if coll is None or coll.schema is not None:
        return False, None
    for write in writes:
        if write.version is not None or not isinstance(write.doc, Mapping):
            return False, None
        if "_version" in write.doc:
            return False, None
    state = copy.deepcopy(base)
    for write in writes:
        if (
            write.event_id is not None
            and state is not None
            and state.get("_last_event_id") == write.event_id
        ):
            continue  # the guard refuses a second write of one event
        body = {k: v for k, v in write.doc.items() if k not in RESERVED_FIELDS}
        previous = state["_version"] if state is not None else 0
        state = json_loads(json_dumps(body))
        state["_id"] = str(doc_id)
        state["_version"] = previous + 1
        state["_last_event_id"] = write.event_id
        state["_last_position"] = write.position
    return True, state
