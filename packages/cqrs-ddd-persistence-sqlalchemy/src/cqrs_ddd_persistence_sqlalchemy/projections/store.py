"""``SQLAlchemyProjectionStore``: read-model collections with one-statement guarded upserts.

A collection is a table. With a :class:`ProjectionSchema` it has typed columns; without one it is
a document collection (``id``, JSON ``doc``). Both carry ``_version``, ``_last_event_id``,
``_last_position`` and ``_updated_at``. Every write is one guarded ``INSERT … ON CONFLICT``
statement (see :mod:`.writes`); reads and searches are in :mod:`.reads`, collection tables in
:mod:`.collections`.

The store takes any bind (the one bind rule, :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`).
An operation joins ``uow=`` or the ambient unit of work; otherwise one statement runs on its own
(autocommit on PostgreSQL) and several in a short transaction, committed before the call
returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_advanced_core.projections import DocumentWrite, ProjectionSchema
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.specifications import apply_query_options
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork
from cqrs_ddd_specifications import QueryOptions, Specification

from .catalog import Collections
from .reads import IDS_PER_STATEMENT, ReadStatements, compile_filter, to_document
from .running import one_bind
from .writes import WriteStatements, document_row, plan, preview

__all__ = ["SQLAlchemyProjectionStore"]


class SQLAlchemyProjectionStore:
    """Projection (read-model) storage: documents or typed rows, keyed by id.

    Args:
        bind: an engine, session factory, session, unit of work or unit-of-work factory
            (see :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`); ``session_factory=`` is the
            seed's name for it.
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
        bind: Bind | Binding = None,
        *,
        session_factory: Bind = None,
        allow_auto_ddl: bool = True,
        schemas: Mapping[str, ProjectionSchema] | None = None,
    ) -> None:
        owner = "SQLAlchemyProjectionStore"
        self.binding = Binding(one_bind(bind, session_factory, owner), owner=owner)
        self.collections = Collections(self.binding, allow_auto_ddl=allow_auto_ddl, schemas=schemas)
        self._writes = WriteStatements()
        self._reads = ReadStatements()

    @property
    def allow_auto_ddl(self) -> bool:
        return self.collections.allow_auto_ddl

    @allow_auto_ddl.setter
    def allow_auto_ddl(self, value: bool) -> None:
        self.collections.allow_auto_ddl = value

    @property
    def metadata(self) -> sa.MetaData:
        """The ``MetaData`` of the collection tables (for migrations)."""
        return self.collections.metadata

    # -- collections -----------------------------------------------------------------------
    def register(self, name: str, schema: ProjectionSchema) -> None:
        """Declare ``name`` a typed collection (no database access)."""
        self.collections.register(name, schema)

    def table(self, name: str) -> sa.Table:
        """The ``Table`` of collection ``name`` (for migrations and custom queries)."""
        return self.collections.get(name).table

    async def ensure_collection(
        self,
        name: str,
        *,
        schema: ProjectionSchema | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> None:
        """Make sure collection ``name`` exists (creating it when auto-DDL is allowed).

        Raises:
            ConfigurationError: the collection is missing and ``allow_auto_ddl`` is off, or its
                table lacks columns the store needs.
        """
        if schema is not None:
            self.register(name, schema)
        await self.collections.prepare(name, uow)

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
        uow: SQLAlchemyUnitOfWork | None = None,
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
        self,
        collection: str,
        docs: Sequence[DocumentWrite],
        *,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> int:
        """Upsert many documents with few statements; returns how many rows were written.

        The result is that of applying the writes in order, except that consecutive writes to
        one id are coalesced first (one statement may not touch a row twice): plain writes
        count every write in ``_version`` but only the last one's event id is checked by the
        idempotency guard; of versioned writes only the highest version can win anyway.
        """
        if not docs:
            return 0
        coll = await self.collections.prepare(collection, uow)
        now = datetime.now(UTC)
        batches = list(plan([document_row(coll, write, now) for write in docs], coll.key))
        execution = self.binding.own_execution(uow)
        if execution is not None and len(batches) == 1 and len(batches[0][1]) == 1:
            # one row: one statement atomic on its own (autocommit where the dialect has it)
            versioned, (row,) = batches[0]
            stmt = self._writes.upsert(dialect_for(execution.dialect), coll, versioned)
            return len(await execution.fetch(stmt, row))
        written = 0
        async with self.binding.transaction(uow) as executor:
            support = dialect_for(executor.dialect)
            for versioned, rows in batches:
                stmt = self._writes.upsert(support, coll, versioned)
                # one statement; executemany batches rows into multi-row VALUES
                found = await executor.fetch(stmt, rows[0] if len(rows) == 1 else rows)
                written += len(found)
        return written

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
        in the batch needs no flush (see :func:`.writes.preview`).
        """
        return preview(self.collections.known(collection), doc_id, base, writes)

    async def delete(
        self, collection: str, doc_id: Any, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> bool:
        """Delete one document; ``False`` if it did not exist."""
        coll = await self.collections.prepare(collection, uow)
        async with self.binding.single(uow) as runner:
            rows = await runner.fetch(self._writes.delete(coll), {"doc_id": coll.ident(doc_id)})
        return bool(rows)

    async def truncate(self, collection: str, *, uow: SQLAlchemyUnitOfWork | None = None) -> None:
        """Delete every document of ``collection`` (transactional, unlike ``TRUNCATE``)."""
        coll = await self.collections.prepare(collection, uow)
        async with self.binding.single(uow) as runner:
            await runner.execute(sa.delete(coll.table))

    # -- reads -----------------------------------------------------------------------------
    async def get(
        self, collection: str, doc_id: Any, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> dict[str, Any] | None:
        """The document ``doc_id`` as a dict, or ``None``.

        A document comes back with its bookkeeping keys ``_id``, ``_version``,
        ``_last_event_id`` and ``_last_position``; a typed row with its columns.
        """
        coll = await self.collections.prepare(collection, uow)
        async with self.binding.reading(uow) as runner:
            rows = await runner.fetch_mappings(
                self._reads.by_id(coll), {"doc_id": coll.ident(doc_id)}
            )
        return to_document(coll, rows[0]) if rows else None

    async def get_many(
        self, collection: str, doc_ids: Iterable[Any], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> dict[Any, dict[str, Any]]:
        """Documents by id (missing ids are absent from the result)."""
        ids = list(doc_ids)
        if not ids:
            return {}
        coll = await self.collections.prepare(collection, uow)
        ids = [coll.ident(i) for i in ids]
        found: dict[Any, dict[str, Any]] = {}
        async with self.binding.reading(uow) as runner:
            stmt = self._reads.by_ids(dialect_for(runner.dialect), coll)
            for start in range(0, len(ids), IDS_PER_STATEMENT):
                chunk = ids[start : start + IDS_PER_STATEMENT]
                for row in await runner.fetch_mappings(stmt, {"doc_ids": chunk}):
                    found[row[coll.key]] = to_document(coll, row)
        return found

    async def find_one(
        self,
        collection: str,
        doc_id: Any = None,
        *,
        spec: Specification | Mapping[str, Any] | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
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
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[dict[str, Any]]:
        """Documents matching ``spec`` with ``options`` (ordering, paging, select_fields).

        On document collections a field that is not a column (``id``, ``_version`` ...) is a key
        path into the document: ``status`` means ``doc.status``. Ordering and ``select_fields``
        take columns (use a typed collection to sort by document fields).

        Example:
            >>> spec = SpecificationBuilder().where("total", "gt", 50).build()
            >>> await store.find("order_summaries", spec, QueryOptions(order_by=["id"], limit=10))
        """
        coll = await self.collections.prepare(collection, uow)
        opts = QueryOptions.from_dict(options) if isinstance(options, Mapping) else options
        async with self.binding.reading(uow) as runner:
            stmt = sa.select(coll.table)
            if spec is not None:
                stmt = stmt.where(compile_filter(dialect_for(runner.dialect), coll, spec))
            if opts is not None:
                stmt = apply_query_options(stmt, coll.model, opts)
            rows = await runner.fetch_mappings(stmt)
        if opts is not None and opts.select_fields:
            return [dict(r) for r in rows]
        return [to_document(coll, r) for r in rows]

    async def count(
        self,
        collection: str,
        spec: Specification | Mapping[str, Any] | None = None,
        *,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> int:
        """How many documents match ``spec`` (all when ``None``)."""
        coll = await self.collections.prepare(collection, uow)
        async with self.binding.reading(uow) as runner:
            stmt = sa.select(sa.func.count()).select_from(coll.table)
            if spec is not None:
                stmt = stmt.where(compile_filter(dialect_for(runner.dialect), coll, spec))
            rows = await runner.fetch(stmt)
        return int(rows[0][0])
