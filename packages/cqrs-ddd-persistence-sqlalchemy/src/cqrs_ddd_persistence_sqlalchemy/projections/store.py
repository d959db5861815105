"""``SQLAlchemyProjectionStore``: read-model collections with one-statement guarded upserts.

A collection is a table. With a :class:`ProjectionSchema` it has typed columns; without one it is
a document collection (``id``, JSON ``doc``). Both carry ``_version``, ``_last_event_id``,
``_last_position`` and ``_updated_at``.

Every write is one ``INSERT … ON CONFLICT (id) DO UPDATE … WHERE <guard>`` statement (PostgreSQL
and SQLite alike), so two writers never interleave a read and a write:

- with a version (``version=`` or a ``"_version"`` key in the document) the guard is
  ``t._version < EXCLUDED._version``: an older or repeated version is refused;
- without one, ``_version`` is incremented and, when the write names an event
  (``event_id=``), the guard ``t._last_event_id IS DISTINCT FROM EXCLUDED._last_event_id``
  makes re-applying the same event to the same document a no-op.

The store resolves its session like every store (``uow=``, ambient unit of work, else its own
short transaction, committed before the call returns).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry as orm_registry

from cqrs_ddd_advanced_core.projections import DocumentWrite, ProjectionSchema
from cqrs_ddd_advanced_core.projections.schema import RESERVED_FIELDS, validate_identifier
from cqrs_ddd_core.errors import (
    ConfigurationError,
    InvalidValueError,
    MappingError,
    PersistenceError,
    suggest,
)
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.errors import translating
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads
from cqrs_ddd_persistence_sqlalchemy.specifications import apply_query_options, build_sqla_filter
from cqrs_ddd_specifications import QueryOptions, Specification

from .tables import collection_metadata, document_table, typed_table

__all__ = ["SQLAlchemyProjectionStore"]

#: Rows per executemany (SQLAlchemy pages them into multi-row VALUES within driver limits).
_CHUNK = 5_000


def _dialect(session: AsyncSession) -> DialectSupport:
    return dialect_for(session)


@dataclass(frozen=True, slots=True)
class _Collection:
    name: str
    table: sa.Table
    schema: ProjectionSchema | None
    model: type[Any]

    @property
    def key(self) -> str:
        return "id" if self.schema is None else self.schema.id_field

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.table.columns)


class SQLAlchemyProjectionStore:
    """Projection (read-model) storage: documents or typed rows, keyed by id.

    Args:
        session_factory: a session factory, engine, session or unit of work (see
            :class:`~cqrs_ddd_persistence_sqlalchemy.core.session.SessionSource`).
        allow_auto_ddl: create missing collection tables (development). With ``False`` a
            missing collection raises :class:`ConfigurationError`; create it with a migration
            (:meth:`table` gives the ``Table`` to put in Alembic's metadata).
        schemas: typed collections, ``name -> ProjectionSchema``.

    Example:
        >>> store = SQLAlchemyProjectionStore(session_factory)
        >>> await store.upsert(collection="order_summaries", doc_id="123",
        ...                    doc={"order_id": "123", "total": 99.99})
        True
        >>> await store.find_one(collection="order_summaries", doc_id="123")
        {'order_id': '123', 'total': 99.99, '_version': 1, ...}
    """

    def __init__(
        self,
        session_factory: Bind = None,
        *,
        allow_auto_ddl: bool = True,
        schemas: Mapping[str, ProjectionSchema] | None = None,
    ) -> None:
        self._source = Binding(session_factory)
        self.allow_auto_ddl = allow_auto_ddl
        self.metadata = collection_metadata()
        self._registry = orm_registry(metadata=self.metadata)
        self._schemas: dict[str, ProjectionSchema] = {}
        self._collections: dict[str, _Collection] = {}
        self._ready: set[str] = set()
        self._statements: dict[tuple[str, bool, str], Any] = {}
        for name, schema in (schemas or {}).items():
            self.register(name, schema)

    # -- collections -----------------------------------------------------------------------
    def register(self, name: str, schema: ProjectionSchema) -> None:
        """Declare ``name`` a typed collection (no database access)."""
        validate_identifier(name, what="collection name")
        current = self._schemas.get(name)
        if current is not None and current != schema:
            raise ConfigurationError(
                f"collection {name!r} is already registered with another schema"
            )
        if name in self._collections and self._collections[name].schema != schema:
            raise ConfigurationError(
                f"collection {name!r} was already used as a document collection"
            )
        self._schemas[name] = schema

    def table(self, name: str) -> sa.Table:
        """The ``Table`` of collection ``name`` (for migrations and custom queries)."""
        return self._collection(name).table

    def _collection(self, name: str) -> _Collection:
        found = self._collections.get(name)
        if found is not None:
            return found
        validate_identifier(name, what="collection name")
        schema = self._schemas.get(name)
        table = (
            document_table(name, self.metadata)
            if schema is None
            else typed_table(name, schema, self.metadata)
        )
        model = type(f"Collection_{name}", (), {"__module__": __name__})
        self._registry.map_imperatively(model, table)
        found = _Collection(name, table, schema, model)
        self._collections[name] = found
        return found

    async def ensure_collection(
        self, name: str, *, schema: ProjectionSchema | None = None, uow: Any = None
    ) -> None:
        """Make sure collection ``name`` exists (creating it when auto-DDL is allowed).

        Raises:
            ConfigurationError: the collection is missing and ``allow_auto_ddl`` is off, or its
                table lacks columns the store needs.
        """
        if schema is not None:
            self.register(name, schema)
        collection = self._collection(name)
        async with self._source.session(uow) as session:
            await self._ensure(session, collection, uow)

    async def _ensure(self, session: AsyncSession, coll: _Collection, uow: Any) -> None:
        if coll.name in self._ready:
            return
        conn = await session.connection()
        existing = await conn.run_sync(_existing_columns, coll.name)
        if existing is None:
            if not self.allow_auto_ddl:
                raise ConfigurationError(
                    f"collection {coll.name!r} does not exist and auto-DDL is disabled "
                    "(allow_auto_ddl=False): create its table with a migration "
                    f"(store.table({coll.name!r}) is the Table to migrate)"
                )
            try:
                with translating():
                    async with conn.begin_nested():
                        await conn.run_sync(lambda c: coll.table.create(c, checkfirst=True))
            except PersistenceError:
                # another process created it between our check and our CREATE
                if await conn.run_sync(_existing_columns, coll.name) is None:
                    raise
            existing = coll.columns
        missing = coll.columns - existing
        if missing:
            raise ConfigurationError(
                f"collection {coll.name!r} exists but lacks the columns "
                f"{', '.join(sorted(missing))}: it was created for another schema"
            )
        self._ready.add(coll.name)
        joined = self._source.resolve_uow(uow)
        if joined is not None:  # created in the caller's transaction: gone if it rolls back
            joined.after_rollback(lambda: self._ready.discard(coll.name))

    async def _prepare(self, session: AsyncSession, name: str, uow: Any) -> _Collection:
        collection = self._collection(name)
        await self._ensure(session, collection, uow)
        return collection

    # -- writes ----------------------------------------------------------------------------
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
        """Insert or replace one document in one guarded statement.

        ``doc`` (or ``data``) replaces the stored document. ``doc_id`` defaults to the
        document's id field. Returns ``False`` when the guard refused the write (stale version
        or an event already applied to this document).

        Example:
            >>> await store.upsert("order_summaries", "o-1", {"total": 10}, version=3)
            True
            >>> await store.upsert("order_summaries", "o-1", {"total": 9}, version=2)
            False
        """
        if doc is not None and data is not None and doc is not data:
            raise ConfigurationError("pass the document as doc= or data=, not both")
        body = doc if doc is not None else data
        if body is None:
            raise ConfigurationError("upsert needs the document (doc= or data=)")
        write = DocumentWrite(
            doc_id=doc_id, doc=body, version=version, event_id=event_id, position=position
        )
        return await self.upsert_many(collection, [write], uow=uow) == 1

    async def upsert_many(
        self, collection: str, docs: Sequence[DocumentWrite], *, uow: Any = None
    ) -> int:
        """Upsert many documents with few statements; returns how many rows were written.

        The result is that of applying the writes in order, except that consecutive writes to
        one id are coalesced first (one statement may not touch a row twice): plain writes
        count every write in ``_version`` but only the last one's event id is checked by the
        idempotency guard; of versioned writes only the highest version can win anyway.
        """
        if not docs:
            return 0
        now = datetime.now(UTC)
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            rows = [self._row(coll, write, now) for write in docs]
            dialect = _dialect(session)
            written = 0
            for versioned, run in _plan(rows, coll.key):
                written += await self._write(session, dialect, coll, run, versioned)
            return written

    def _row(
        self, coll: _Collection, write: DocumentWrite, now: datetime
    ) -> tuple[bool, dict[str, Any]]:
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

    async def _write(
        self,
        session: AsyncSession,
        dialect: DialectSupport,
        coll: _Collection,
        rows: list[dict[str, Any]],
        versioned: bool,
    ) -> int:
        stmt = self._upsert_statement(dialect, coll, versioned)
        conn = await session.connection()
        # one statement; executemany batches the rows into multi-row VALUES ("insertmanyvalues")
        result = await conn.execute(stmt, rows[0] if len(rows) == 1 else rows)
        return len(result.all())

    def _upsert_statement(self, dialect: DialectSupport, coll: _Collection, versioned: bool) -> Any:
        """The guarded upsert of ``coll``, built once (compiled-statement cache friendly)."""
        cache_key = (coll.name, versioned, dialect.name)
        cached = self._statements.get(cache_key)
        if cached is not None:
            return cached
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
            # a plain row's _version is the number of writes it stands for (see _plan)
            set_["_version"] = t.c._version + excluded["_version"]
            guard = sa.or_(
                excluded["_last_event_id"].is_(None),
                t.c._last_event_id.is_distinct_from(excluded["_last_event_id"]),
            )
        stmt = ins.on_conflict_do_update(index_elements=[key], set_=set_, where=guard).returning(
            key
        )
        self._statements[cache_key] = stmt
        return stmt

    def preview_document(
        self,
        collection: str,
        doc_id: Any,
        base: dict[str, Any] | None,
        writes: Sequence[DocumentWrite],
    ) -> tuple[bool, dict[str, Any] | None]:
        """What :meth:`get` would return after ``writes`` on top of ``base`` (a previous
        :meth:`get` result), without touching the database; ``(False, None)`` when unsure.

        Used by the runner's write buffer so that a handler reading a document it wrote earlier
        in the batch needs no flush. Only document collections and plain (unversioned) writes
        are previewed; values go through the JSON codec, as they would through the database.
        """
        coll = self._collections.get(collection)
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

    async def delete(self, collection: str, doc_id: Any, *, uow: Any = None) -> bool:
        """Delete one document; ``False`` if it did not exist."""
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            key = coll.table.c[coll.key]
            ident = str(doc_id) if coll.schema is None else doc_id
            result = await session.execute(sa.delete(coll.table).where(key == ident).returning(key))
            return bool(result.all())

    async def truncate(self, collection: str, *, uow: Any = None) -> None:
        """Delete every document of ``collection`` (transactional, unlike ``TRUNCATE``)."""
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            await session.execute(sa.delete(coll.table))

    # -- reads -----------------------------------------------------------------------------
    async def get(self, collection: str, doc_id: Any, *, uow: Any = None) -> dict[str, Any] | None:
        """The document ``doc_id`` as a dict, or ``None``.

        A document comes back with its bookkeeping keys ``_id``, ``_version``,
        ``_last_event_id`` and ``_last_position``; a typed row with its columns.
        """
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            ident = str(doc_id) if coll.schema is None else doc_id
            row = (
                (
                    await session.execute(
                        sa.select(coll.table).where(coll.table.c[coll.key] == ident)
                    )
                )
                .mappings()
                .first()
            )
            return None if row is None else _to_dict(coll, row)

    async def get_many(
        self, collection: str, doc_ids: Iterable[Any], *, uow: Any = None
    ) -> dict[Any, dict[str, Any]]:
        """Documents by id (missing ids are absent from the result)."""
        ids = list(doc_ids)
        if not ids:
            return {}
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            key = coll.table.c[coll.key]
            if coll.schema is None:
                ids = [str(i) for i in ids]
            found: dict[Any, dict[str, Any]] = {}
            step = 10_000
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                result = await session.execute(sa.select(coll.table).where(key.in_(chunk)))
                for row in result.mappings():
                    found[row[coll.key]] = _to_dict(coll, row)
            return found

    async def find_one(
        self,
        collection: str,
        doc_id: Any = None,
        *,
        spec: Specification | Mapping[str, Any] | None = None,
        uow: Any = None,
    ) -> dict[str, Any] | None:
        """One document: by ``doc_id``, or the first matching ``spec``.

        Example:
            >>> await store.find_one(collection="order_summaries", doc_id="order-123")
        """
        if doc_id is not None:
            return await self.get(collection, doc_id, uow=uow)
        if spec is None:
            raise ConfigurationError("find_one needs doc_id= or spec=")
        found = await self.find(collection, spec, QueryOptions(limit=1), uow=uow)
        return found[0] if found else None

    async def find(
        self,
        collection: str,
        spec: Specification | Mapping[str, Any] | None = None,
        options: QueryOptions | Mapping[str, Any] | None = None,
        *,
        uow: Any = None,
    ) -> list[dict[str, Any]]:
        """Documents matching ``spec`` with ``options`` (ordering, paging, select_fields).

        On document collections a field that is not a column (``id``, ``_version`` ...) is a key
        path into the document: ``status`` means ``doc.status``. Ordering and ``select_fields``
        take columns (use a typed collection to sort by document fields).

        Example:
            >>> spec = SpecificationBuilder().where("total", "gt", 50).build()
            >>> await store.find("order_summaries", spec, QueryOptions(order_by=["id"], limit=10))
        """
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            stmt = sa.select(coll.table)
            if spec is not None:
                stmt = stmt.where(_filter(session, coll, spec))
            opts = QueryOptions.from_dict(options) if isinstance(options, Mapping) else options
            if opts is not None:
                stmt = apply_query_options(stmt, coll.model, opts)
            rows = (await session.execute(stmt)).mappings().all()
            if opts is not None and opts.select_fields:
                return [dict(r) for r in rows]
            return [_to_dict(coll, r) for r in rows]

    async def count(
        self,
        collection: str,
        spec: Specification | Mapping[str, Any] | None = None,
        *,
        uow: Any = None,
    ) -> int:
        """How many documents match ``spec`` (all when ``None``)."""
        async with self._source.session(uow) as session:
            coll = await self._prepare(session, collection, uow)
            stmt = sa.select(sa.func.count()).select_from(coll.table)
            if spec is not None:
                stmt = stmt.where(_filter(session, coll, spec))
            return int((await session.execute(stmt)).scalar_one())


def _filter(
    session: AsyncSession, coll: _Collection, spec: Specification | Mapping[str, Any]
) -> sa.ColumnElement[bool]:
    """``spec`` compiled for the dialect of ``session``: document fields are JSON paths, which
    are dialect-specific, and only a filter built for its dialect is a cacheable statement (the
    same query shape is compiled once, not on every call)."""
    tree = spec.to_dict() if isinstance(spec, Specification) else dict(spec)
    if coll.schema is None:
        tree = _into_document(tree, coll.columns)
    return build_sqla_filter(coll.model, tree, dialect=dialect_for(session).name)


def _existing_columns(conn: sa.Connection, name: str) -> frozenset[str] | None:
    inspector = sa.inspect(conn)
    if not inspector.has_table(name):
        return None
    return frozenset(c["name"] for c in inspector.get_columns(name))


def _to_dict(coll: _Collection, row: RowMapping) -> dict[str, Any]:
    if coll.schema is None:
        doc = row["doc"]
        result = dict(doc) if isinstance(doc, Mapping) else {"value": doc}
        result["_id"] = row["id"]
        result["_version"] = row["_version"]
        result["_last_event_id"] = row["_last_event_id"]
        result["_last_position"] = row["_last_position"]
        return result
    return {k: v for k, v in row.items() if k != "_updated_at"}


def _into_document(node: dict[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """Rewrite leaf fields that are not columns of a document table into ``doc.<field>``."""
    if "conditions" in node:
        return {**node, "conditions": [_into_document(c, columns) for c in node["conditions"]]}
    if "condition" in node and isinstance(node["condition"], dict):
        return {**node, "condition": _into_document(node["condition"], columns)}
    attr = node.get("attr")
    if isinstance(attr, str) and attr.split(".", 1)[0] not in columns:
        return {**node, "attr": f"doc.{attr}"}
    return node


def _plan(
    rows: list[tuple[bool, dict[str, Any]]], key: str
) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
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
            for start in range(0, len(batch), _CHUNK):
                yield versioned, batch[start : start + _CHUNK]
