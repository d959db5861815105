"""``SQLAlchemyRepository``: aggregates in tables, with optimistic concurrency.

Writes are Core statements checked by row count: a new aggregate (``version == 0``) is one
``INSERT … ON CONFLICT (pk) DO NOTHING``; an existing one is one
``UPDATE … WHERE id = :id AND version = :loaded`` that sets ``version = :loaded + 1``. No row
written means somebody else got there first (or deleted the row):
:class:`~cqrs_ddd_core.errors.OptimisticConcurrencyError`, raised at ``add`` with the transaction
still usable (reload and retry in the same unit of work). The aggregate's ``version`` changes only
when the unit of work commits.

Reads select columns (no ORM identity map) and load child tables with one ``IN`` query per
relationship, so loading N aggregates costs ``1 + relationships`` queries. Saving a loaded
aggregate writes only the child rows that changed where that is safe (``core/child_rows.py``),
else rewrites them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.errors import (
    ConfigurationError,
    InvalidSpecificationError,
    OptimisticConcurrencyError,
    SerializationFailureError,
)
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding, is_bind
from cqrs_ddd_persistence_sqlalchemy.core.child_rows import ChildRowMemo
from cqrs_ddd_persistence_sqlalchemy.core.loader import (
    IN_CHUNK,
    column_select,
    delete_children,
    hydrate,
    insert_children,
)
from cqrs_ddd_persistence_sqlalchemy.core.mapper import ModelMapper
from cqrs_ddd_persistence_sqlalchemy.core.search_result import SQLAlchemySearchResult
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.types.clock import utcnow
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["SQLAlchemyRepository"]

A = TypeVar("A", bound=AggregateRoot[Any])


#: An id that cannot be a key of the table (wrong type): matches no row.
_NO_ROW: Any = object()


def _actor() -> Any:
    from cqrs_ddd_persistence_sqlalchemy.mixins.auditable import current_actor

    return current_actor()


class SQLAlchemyRepository(Generic[A]):
    """Repository of ``entity_cls`` aggregates stored in ``db_model_cls`` rows.

    Args:
        entity_cls: the aggregate class (pydantic ``AggregateRoot``).
        db_model_cls: the declarative model (usually with ``VersionMixin``).
        mapper: a :class:`ModelMapper` (default: automatic by field name).
        bind: what to use outside a unit of work (session factory, engine, session or UoW);
            without it, every call needs ``uow=`` or an ambient ``async with uow:``.
        version_column: attribute of the optimistic-lock column (``"version"``).

    Example:
        >>> order_repo = SQLAlchemyRepository(Order, OrderModel)
        >>> async with SQLAlchemyUnitOfWork(session_factory) as uow:
        ...     await order_repo.add(Order(id="1", customer_id="c", total=9.5), uow=uow)
        ...     await uow.commit()

    Without a version column the repository still refuses to resurrect deleted rows and to
    overwrite an existing row with a new aggregate, but concurrent updates are last-writer-wins.
    """

    def __init__(
        self,
        entity_cls: type[A],
        db_model_cls: type[Any],
        mapper: ModelMapper[A] | Bind = None,
        *,
        bind: Bind = None,
        version_column: str = "version",
    ) -> None:
        if mapper is not None and not isinstance(mapper, ModelMapper):
            # ``SQLAlchemyRepository(Order, OrderModel, engine)``: every store takes its bind
            # positionally; the third argument is the bind unless it is a mapper.
            if bind is not None or not is_bind(mapper):
                raise ConfigurationError(
                    f"SQLAlchemyRepository's third argument must be a ModelMapper or a bind, "
                    f"got {type(mapper).__name__}"
                )
            mapper, bind = None, mapper
        self.entity_cls = entity_cls
        self.db_model_cls = db_model_cls
        self.mapper: ModelMapper[A] = mapper or ModelMapper(entity_cls, db_model_cls)
        self._source = Binding(bind, owner=f"SQLAlchemyRepository({entity_cls.__name__})")
        mm = self.mapper.model_mapper
        self.table = self.mapper.table
        pk = list(mm.primary_key)
        if len(pk) != 1:
            raise ConfigurationError(
                f"{db_model_cls.__name__}: an aggregate table needs a single-column primary key"
            )
        self._pk: sa.Column[Any] = pk[0]  # type: ignore[assignment]
        self._pk_key = self._pk.key
        id_plan = next((p for p in self.mapper.columns if p.key == self._pk_key), None)
        if id_plan is None:
            raise ConfigurationError(
                f"{entity_cls.__name__} has no field mapped to the primary key {self._pk_key!r}"
            )
        self._id_to_db = id_plan.to_db
        try:
            self._pk_type: type[Any] = self._pk.type.python_type
        except NotImplementedError:  # a type without a Python type: take ids as given
            self._pk_type = object
        attrs = {a.key: a for a in mm.column_attrs}
        self._version: Any = attrs[version_column].columns[0] if version_column in attrs else None
        self._version_key: str | None = self._version.key if self._version is not None else None
        archived = attrs.get("archived_at")
        self._archived_at: Any = archived.columns[0] if archived is not None else None
        self._archived_by: Any = attrs["archived_by"].columns[0] if "archived_by" in attrs else None
        # specifications and options may name entity fields that field_map renames
        self._renamed = {
            name: target for name, target in self.mapper.field_map.items() if target in attrs
        }
        self._hooks = {
            name: getattr(db_model_cls, target).expression for name, target in self._renamed.items()
        } or None
        self._select = column_select(self.mapper)
        # Saves write only the child rows that changed where that is safe (core/child_rows.py).
        self._children = ChildRowMemo(self.mapper, versioned=self._version is not None)

    @property
    def archivable(self) -> bool:
        """Whether ``delete`` archives (the model has an ``archived_at`` column)."""
        return self._archived_at is not None

    # -- helpers ---------------------------------------------------------------------------
    def _key(self, entity_id: Any) -> Any:
        """The primary key value for ``entity_id``, or ``_NO_ROW`` when it cannot be one
        (``get("abc")`` on a UUID or integer key finds nothing rather than failing)."""
        value = self._id_to_db(entity_id)
        if value is None or isinstance(value, self._pk_type):
            return value
        try:
            return self._pk_type(value)
        except (TypeError, ValueError):
            return _NO_ROW

    def _dialect_of(self, joined: SQLAlchemyUnitOfWork | None) -> str | None:
        """The dialect a search will run on, when it is known before its session is opened.

        Known from the unit of work it joins, else from what the store was built with (a
        session, a unit of work, an engine or an ``async_sessionmaker`` bound to an engine);
        ``None`` for a plain factory callable (the filter is then compiled per execution).
        """
        if joined is not None:
            return dialect_for(joined.session).name
        source = self._source
        if source.bound_session is not None:
            return dialect_for(source.bound_session).name
        engine = source.engine
        return dialect_for(engine).name if engine is not None else None

    def _live(self, stmt: Any, include_archived: bool) -> Any:
        if self._archived_at is None or include_archived:
            return stmt
        return stmt.where(self._archived_at.is_(None))

    def _conflict(self, entity_id: Any, expected: Any, actual: Any, what: str) -> Exception:
        return OptimisticConcurrencyError(
            f"{self.entity_cls.__name__} {entity_id!r}: {what} (expected version {expected}, "
            f"found {'no row' if actual is None else actual})",
            entity_type=self.entity_cls.__name__,
            entity_id=entity_id,
            expected_version=expected,
            actual_version=actual,
        )

    async def _actual_version(self, session: AsyncSession, key: Any) -> Any:
        column = self._version if self._version is not None else sa.literal(1)
        return (
            await session.execute(sa.select(column).where(self._pk == key))
        ).scalar_one_or_none()

    def _loaded_version(self, entity: A, uow: SQLAlchemyUnitOfWork | None) -> int:
        pending = uow.pending_version(entity) if uow is not None else None
        return entity.version if pending is None else pending

    def _finish(self, entity: A, uow: SQLAlchemyUnitOfWork | None, version: int) -> None:
        if uow is not None:
            uow.register(entity, new_version=version)
        else:
            set_persisted_version(entity, version)

    async def _hydrate(self, session: AsyncSession, rows: Sequence[Any]) -> list[A]:
        if not self._children.enabled or self._version_key is None:
            return await hydrate(session, self.mapper, rows, version_key=self._version_key)
        child_rows: list[dict[str, list[Any]]] = []
        entities: list[A] = await hydrate(
            session, self.mapper, rows, version_key=self._version_key, child_rows=child_rows
        )
        for row, entity, children in zip(rows, entities, child_rows, strict=True):
            self._children.loaded(entity, children, row._mapping[self._version_key])
        return entities

    # -- writes ----------------------------------------------------------------------------
    async def add(self, entity: A, *, uow: Any = None) -> A:
        """Insert a new aggregate or update a loaded one (version-checked).

        Raises:
            OptimisticConcurrencyError: the row changed since it was loaded, was deleted, or a
                new aggregate's id is taken. The transaction stays usable (reload and retry),
                except under PostgreSQL REPEATABLE READ / SERIALIZABLE, where the server aborts
                the loser's transaction: roll back and retry in a new one.
        """
        if not isinstance(entity, self.entity_cls):
            raise ConfigurationError(
                f"{type(self).__name__} of {self.entity_cls.__name__} got {type(entity).__name__}"
            )
        joined = self._source.resolve_uow(uow)
        loaded = self._loaded_version(entity, joined)
        new_version = loaded + 1
        values = self.mapper.to_values(entity)
        key = values[self._pk_key]
        async with self._source.session(joined) as session:
            if loaded == 0:
                await self._insert(session, entity, values, key)
                await insert_children(session, self.mapper, entity, values)
            else:
                await self._update(session, entity, values, key, loaded, new_version)
                # The root's UPDATE checked ``loaded`` and holds its row lock: the children
                # remembered at ``loaded`` are the database's, so only changes are written.
                if not await self._children.save(session, entity, values, loaded):
                    await delete_children(session, self.mapper, values)
                    await insert_children(session, self.mapper, entity, values)
        self._finish(entity, joined, new_version)
        # Tagged with the version this save gives the aggregate: trusted by the next save
        # only if that version became the aggregate's (a rolled-back save leaves ``loaded``).
        self._children.saved(entity, values, new_version)
        return entity

    async def _insert(
        self, session: AsyncSession, entity: A, values: dict[str, Any], key: Any
    ) -> None:
        row = dict(values)
        if self._version_key is not None:
            row[self._version_key] = 1
        stmt = dialect_for(session).insert_ignore(self.table, [self._pk]).values(row)
        if (await session.execute(stmt)).rowcount == 0:  # type: ignore[attr-defined]
            actual = await self._actual_version(session, key)
            raise self._conflict(entity.id, 0, actual, "a row with this id already exists")

    async def _update(
        self,
        session: AsyncSession,
        entity: A,
        values: dict[str, Any],
        key: Any,
        loaded: int,
        new_version: int,
    ) -> None:
        changes = {k: v for k, v in values.items() if k != self._pk_key}
        stmt = sa.update(self.table).where(self._pk == key)
        if self._version is not None:
            stmt = stmt.where(self._version == loaded)
            changes[self._version.key] = new_version
        if self._archived_at is not None:
            stmt = stmt.where(self._archived_at.is_(None))
        if not changes:  # nothing but the key: still check the row is there
            changes = {self._pk.key: key}
        try:
            rowcount = (await session.execute(stmt.values(changes))).rowcount  # type: ignore[attr-defined]
        except SerializationFailureError as exc:  # REPEATABLE READ / SERIALIZABLE loser
            raise self._conflict(entity.id, loaded, None, "concurrent update") from exc
        if rowcount == 0:
            actual = await self._actual_version(session, key)
            raise self._conflict(entity.id, loaded, actual, "changed or deleted concurrently")

    async def delete(self, entity: Any, *, uow: Any = None) -> None:
        """Delete (or archive, for archivable models) by entity or by id.

        Given an aggregate, its loaded version is checked and a mismatch raises
        ``OptimisticConcurrencyError``; given an id, deleting a missing row does nothing.
        """
        joined = self._source.resolve_uow(uow)
        is_entity = isinstance(entity, AggregateRoot)
        entity_id = entity.id if is_entity else entity
        key = self._key(entity_id)
        if key is _NO_ROW:
            return
        expected = self._loaded_version(entity, joined) if is_entity else None
        async with self._source.session(joined) as session:
            where: list[ColumnElement[bool]] = [self._pk == key]
            if expected is not None and self._version is not None:
                where.append(self._version == expected)
            if self._archived_at is not None:
                rowcount = await self._archive(session, where)
            else:
                if self.mapper.children:
                    found = (
                        await session.execute(self._select.where(*where).with_for_update())
                    ).first()
                    if found is not None:
                        await delete_children(session, self.mapper, dict(found._mapping))
                result = await session.execute(sa.delete(self.table).where(*where))
                rowcount = result.rowcount  # type: ignore[attr-defined]
            if rowcount == 0 and is_entity:
                actual = await self._actual_version(session, key)
                raise self._conflict(entity_id, expected, actual, "changed or deleted concurrently")
        if is_entity and expected is not None and self._archived_at is not None:
            self._finish(entity, joined, expected + 1)

    async def _archive(self, session: AsyncSession, where: list[ColumnElement[bool]]) -> int:
        changes: dict[str, Any] = {self._archived_at.key: utcnow()}
        if self._archived_by is not None:
            changes[self._archived_by.key] = _actor()
        if self._version is not None:
            changes[self._version.key] = self._version + 1
        stmt = sa.update(self.table).where(*where, self._archived_at.is_(None)).values(changes)
        return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def restore(self, entity: Any, *, uow: Any = None) -> None:
        """Un-archive an archived aggregate (by entity or id); a no-op for live rows."""
        if self._archived_at is None:
            raise ConfigurationError(f"{self.db_model_cls.__name__} is not archivable")
        joined = self._source.resolve_uow(uow)
        entity_id = entity.id if isinstance(entity, AggregateRoot) else entity
        key = self._key(entity_id)
        if key is _NO_ROW:
            return
        changes: dict[str, Any] = {self._archived_at.key: None}
        if self._archived_by is not None:
            changes[self._archived_by.key] = None
        if self._version is not None:
            changes[self._version.key] = self._version + 1
        stmt = (
            sa.update(self.table)
            .where(self._pk == key, self._archived_at.is_not(None))
            .values(changes)
        )
        async with self._source.session(joined) as session:
            await session.execute(stmt)

    # -- reads -----------------------------------------------------------------------------
    async def get(
        self, entity_id: Any, *, uow: Any = None, include_archived: bool = False
    ) -> A | None:
        """The aggregate with ``entity_id`` (children loaded), or ``None``."""
        key = self._key(entity_id)
        if key is _NO_ROW:
            return None
        stmt = self._live(self._select.where(self._pk == key), include_archived)
        async with self._source.session(uow) as session:
            rows = list((await session.execute(stmt)).all())
            found = await self._hydrate(session, rows)
        return found[0] if found else None

    async def get_many(
        self, entity_ids: Sequence[Any], *, uow: Any = None, include_archived: bool = False
    ) -> list[A]:
        """The existing aggregates among ``entity_ids``, in the order of the ids given."""
        keys = [k for k in dict.fromkeys(self._key(i) for i in entity_ids) if k is not _NO_ROW]
        found: dict[Any, A] = {}
        async with self._source.session(uow) as session:
            for start in range(0, len(keys), IN_CHUNK):
                chunk = keys[start : start + IN_CHUNK]
                stmt = self._live(self._select.where(self._pk.in_(chunk)), include_archived)
                rows = list((await session.execute(stmt)).all())
                for row, entity in zip(rows, await self._hydrate(session, rows), strict=True):
                    found[row._mapping[self._pk_key]] = entity
        return [found[k] for k in keys if k in found]

    async def list_all(self, *, uow: Any = None, include_archived: bool = False) -> list[A]:
        """Every aggregate (ordered by id). Prefer ``search(...).stream()`` for big tables."""
        result = self.search(
            None,
            {"order_by": [self.mapper.attr_of[self._pk_key]]},
            uow=uow,
            include_archived=include_archived,
        )
        return await result.all()

    async def exists(
        self, entity_id: Any, *, uow: Any = None, include_archived: bool = False
    ) -> bool:
        key = self._key(entity_id)
        if key is _NO_ROW:
            return False
        stmt = self._live(
            sa.select(sa.literal(1)).select_from(self.table).where(self._pk == key),
            include_archived,
        )
        async with self._source.session(uow) as session:
            return (await session.execute(stmt.limit(1))).first() is not None

    def search(
        self,
        spec_or_options: Any = None,
        options: Any = None,
        *,
        uow: Any = None,
        include_archived: bool = False,
    ) -> SQLAlchemySearchResult[A]:
        """Aggregates matching a specification, with query options; all in SQL.

        ``spec_or_options`` is a specification (``Specification``, its dict form) or, alone,
        query options (``QueryOptions`` or its dict form). ``await`` the result for a list,
        ``.stream()`` it, ``.count()`` or ``.first()`` it.

        Example:
            >>> spec = SpecificationBuilder().where("status", "eq", "paid").build()
            >>> page = await repo.search(spec, QueryOptions(order_by=["-total"], limit=20))
            >>> async for order in repo.search(spec).stream(batch_size=1000): ...
        """
        from cqrs_ddd_persistence_sqlalchemy.specifications import (
            apply_query_options,
            build_sqla_filter,
            keyset,
        )
        from cqrs_ddd_specifications import QueryOptions, Specification, encode_cursor

        spec: Any = spec_or_options
        if options is None and _is_options(spec):
            spec, options = None, spec
        if isinstance(options, Mapping):
            options = QueryOptions.from_dict(options)
        if options is not None and not isinstance(options, QueryOptions):
            raise InvalidSpecificationError(
                f"options must be QueryOptions or a dict, got {type(options).__name__}"
            )
        if options is not None and (options.select_fields or options.group_by):
            raise InvalidSpecificationError(
                "repository.search returns aggregates: select_fields/group_by belong in a query "
                "handler (build_sqla_filter + apply_query_options)"
            )
        joined = self._source.resolve_uow(uow)
        # built for the dialect it runs on, the statement is cacheable: SQLAlchemy compiles it
        # once per shape instead of on every execution (dialect-specific leaves otherwise wait
        # for compile time, which keeps the whole statement out of the compiled cache)
        dialect = self._dialect_of(joined)
        base = self._live(self._select, include_archived)
        if spec is not None:
            if not isinstance(spec, Specification | Mapping):
                raise InvalidSpecificationError(
                    f"expected a specification, got {type(spec).__name__}"
                )
            base = base.where(
                build_sqla_filter(self.db_model_cls, spec, self._hooks, dialect=dialect)
            )
        paged = apply_query_options(base, self.db_model_cls, options, self._hooks)
        count = sa.select(sa.func.count()).select_from(base.order_by(None).subquery())
        model = self.db_model_cls
        opts: QueryOptions | None = options
        renamed = self._renamed
        attr_of = self.mapper.attr_of

        def cursor_of(row: Any) -> str:
            assert opts is not None
            # rows are keyed by Column.key; the keyset names attributes or entity fields
            values = {attr_of.get(k, k): v for k, v in row.items()}
            values.update({name: values[target] for name, target in renamed.items()})
            order = keyset(model, opts)
            return encode_cursor(order, [values[o.field] for o in order])

        return SQLAlchemySearchResult(
            statement=base,
            paged=paged,
            count_statement=count,
            session_scope=lambda: self._scope(joined, dialect),
            hydrate=self._hydrate,
            cursor_of=cursor_of if opts is not None else None,
            limit=opts.limit if opts is not None else None,
        )

    @asynccontextmanager
    async def _scope(
        self, joined: SQLAlchemyUnitOfWork | None, dialect: str | None
    ) -> AsyncIterator[AsyncSession]:
        # the UoW resolved when search() was called, else whatever is ambient when consumed
        async with self._source.session(
            joined if joined is not None and joined.active else None
        ) as session:
            found = dialect_for(session).name
            if dialect is not None and found != dialect:
                raise ConfigurationError(
                    f"this search was built for {dialect!r} but is consumed on a {found!r} "
                    "session: consume it in the unit of work it was created in, or create it "
                    "where it is consumed"
                )
            yield session


def _is_options(value: Any) -> bool:
    from cqrs_ddd_specifications import QueryOptions, Specification

    if isinstance(value, QueryOptions):
        return True
    if isinstance(value, Specification | BaseModel):
        return False
    # a dict is a specification when it has the AST's "op" key, options otherwise
    return isinstance(value, Mapping) and "op" not in value
