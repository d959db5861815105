"""The catalog of a projection store's collections: which table a collection name stands for,
and making sure that table exists before the first statement on it.

A collection is declared typed (:meth:`Collections.register` with a ``ProjectionSchema``) or
becomes a document collection on first use. Its table is checked once per store: created when
auto-DDL is allowed (development), else it must exist with the columns the store needs (a
migration made it). The check is DDL and inspection, so it runs on a session's connection
(``Binding.session``), in the caller's unit of work when there is one, else in a short
transaction of its own that commits before the statement it prepares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry as orm_registry

from cqrs_ddd_advanced_core.projections import ProjectionSchema
from cqrs_ddd_advanced_core.projections.schema import validate_identifier
from cqrs_ddd_core.errors import ConfigurationError, PersistenceError
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.errors import translating
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

from .tables import collection_metadata, document_table, typed_table

__all__ = ["Collection", "Collections"]


@dataclass(frozen=True, slots=True)
class Collection:
    """One collection: its table, its schema (``None``: a document collection) and the class
    mapped to its table (what the specification compiler resolves fields on)."""

    name: str
    table: sa.Table
    schema: ProjectionSchema | None
    model: type[Any]

    @property
    def key(self) -> str:
        """The name of the id column."""
        return "id" if self.schema is None else self.schema.id_field

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.table.columns)

    def ident(self, doc_id: Any) -> Any:
        """``doc_id`` as stored: document collections key by text."""
        return str(doc_id) if self.schema is None else doc_id


class Collections:
    """The collections of one store and their tables (on a ``MetaData`` of the store's own).

    Args:
        binding: the store's binding (where the existence check runs).
        allow_auto_ddl: create a missing table instead of refusing to work.
        schemas: typed collections, ``name -> ProjectionSchema``.
    """

    def __init__(
        self,
        binding: Binding,
        *,
        allow_auto_ddl: bool,
        schemas: Mapping[str, ProjectionSchema] | None = None,
    ) -> None:
        self.binding = binding
        self.allow_auto_ddl = allow_auto_ddl
        self.metadata = collection_metadata()
        self._registry = orm_registry(metadata=self.metadata)
        self._schemas: dict[str, ProjectionSchema] = {}
        self._known: dict[str, Collection] = {}
        self._ready: set[str] = set()
        for name, schema in (schemas or {}).items():
            self.register(name, schema)

    def register(self, name: str, schema: ProjectionSchema) -> None:
        """Declare ``name`` a typed collection (no database access)."""
        validate_identifier(name, what="collection name")
        current = self._schemas.get(name)
        if current is not None and current != schema:
            raise ConfigurationError(
                f"collection {name!r} is already registered with another schema"
            )
        if name in self._known and self._known[name].schema != schema:
            raise ConfigurationError(
                f"collection {name!r} was already used as a document collection"
            )
        self._schemas[name] = schema

    def known(self, name: str) -> Collection | None:
        """Collection ``name`` if it was used already (no table is built)."""
        return self._known.get(name)

    def get(self, name: str) -> Collection:
        """Collection ``name``, its table built on first use (no database access)."""
        found = self._known.get(name)
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
        found = Collection(name, table, schema, model)
        self._known[name] = found
        return found

    async def prepare(self, name: str, uow: SQLAlchemyUnitOfWork | None = None) -> Collection:
        """Collection ``name``, its table checked (or created) once per store.

        Raises:
            ConfigurationError: the table is missing and ``allow_auto_ddl`` is off, or it lacks
                columns the store needs.
        """
        collection = self.get(name)
        if name in self._ready:
            return collection
        async with self.binding.session(uow) as session:
            await self._ensure(await session.connection(), collection)
        self._ready.add(name)
        joined = self.binding.resolve_uow(uow)
        if joined is not None:  # created in the caller's transaction: gone if it rolls back
            joined.after_rollback(lambda: self._ready.discard(name))
        return collection

    async def _ensure(self, conn: AsyncConnection, coll: Collection) -> None:
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


def _existing_columns(conn: sa.Connection, name: str) -> frozenset[str] | None:
    inspector = sa.inspect(conn)
    if not inspector.has_table(name):
        return None
    return frozenset(c["name"] for c in inspector.get_columns(name))
