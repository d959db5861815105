"""``SQLAlchemyRepository``: aggregates in tables, with optimistic concurrency.

Writes are Core statements checked by row count (:mod:`.writes`): a new aggregate
(``version == 0``) is one ``INSERT … ON CONFLICT (pk) DO NOTHING``; an existing one is one
``UPDATE … WHERE id = :id AND version = :loaded`` that sets ``version = :loaded + 1``. No row
written means somebody else got there first (or deleted the row):
:class:`~cqrs_ddd_core.errors.OptimisticConcurrencyError`, raised at ``add`` with the transaction
still usable (reload and retry in the same unit of work). The aggregate's ``version`` changes only
when the unit of work commits.

In a unit of work, new aggregates are held and inserted together — one ``INSERT`` per table
before the transaction's next statement or at commit (:mod:`.batch`) — and the changed child
rows of loaded aggregates are held the same way, their root ``UPDATE`` (and its conflict) still
at ``add``.

Reads select columns (no ORM identity map) and load child tables with one ``IN`` query per
relationship (:mod:`.loader`), so loading N aggregates costs ``1 + relationships`` queries.
Loads and saves run on the execution seam: in a unit of work, on its transaction without
making its ORM session (``uow.session`` exists only if the caller asks for it).
Saving a loaded aggregate writes only the child rows that changed where that is safe
(:mod:`.child_rows`), else rewrites them. Searches are lazy (:mod:`.search`, :mod:`.results`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any, Generic, TypeVar

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.unit_of_work import IUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding, is_bind
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.execution.reference import ConnectionExecutor
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span, tracer_for
from cqrs_ddd_persistence_sqlalchemy.repository import writes
from cqrs_ddd_persistence_sqlalchemy.repository.batch import PendingInserts
from cqrs_ddd_persistence_sqlalchemy.repository.child_rows import ChildChanges, Diff
from cqrs_ddd_persistence_sqlalchemy.repository.loader import IN_CHUNK, hydrate, mapping_of
from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper, automatic_mapper
from cqrs_ddd_persistence_sqlalchemy.repository.results import SQLAlchemySearchResult
from cqrs_ddd_persistence_sqlalchemy.repository.root import NO_ROW, root_table
from cqrs_ddd_persistence_sqlalchemy.repository.search import search
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["SQLAlchemyRepository"]

A = TypeVar("A", bound=AggregateRoot[Any])

_BINDS = (
    "an AsyncEngine, an async_sessionmaker, an AsyncSession, a SQLAlchemyUnitOfWork or a "
    "factory of units of work or sessions"
)


class SQLAlchemyRepository(Generic[A]):
    """Repository of ``entity_cls`` aggregates stored in ``db_model_cls`` rows.

    Args:
        entity_cls: the aggregate class (pydantic ``AggregateRoot``).
        db_model_cls: the declarative model (usually with ``VersionMixin``).
        mapper: a :class:`ModelMapper` (default: automatic by field name) — or, as every
            store takes its bind positionally, the bind itself
            (``SQLAlchemyRepository(Order, OrderModel, engine)``).
        bind: what to use outside a unit of work (engine, session factory, session, unit of
            work or a factory of them); without it, every call needs ``uow=`` or an ambient
            ``async with uow:``.
        version_column: attribute of the optimistic-lock column (``"version"``).

    Every operation takes ``uow=`` (typed as the core port, which this repository implements):
    a :class:`SQLAlchemyUnitOfWork`; any other unit of work is a ``ConfigurationError``.

    Raises:
        ConfigurationError: the third argument is neither a mapper nor a bind, a bind is given
            twice, or the model does not fit (see :class:`RootTable`).

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
            if not is_bind(mapper):
                raise ConfigurationError(
                    f"SQLAlchemyRepository({entity_cls.__name__})'s third argument must be a "
                    f"ModelMapper or a bind ({_BINDS}), got {type(mapper).__name__}"
                )
            if bind is not None:
                raise ConfigurationError(
                    f"SQLAlchemyRepository({entity_cls.__name__}) was given a bind twice "
                    "(third argument and bind=): pass one"
                )
            mapper, bind = None, mapper
        self.entity_cls = entity_cls
        self.db_model_cls = db_model_cls
        if mapper is None:
            mapper = automatic_mapper(entity_cls, db_model_cls)
        self.mapper: ModelMapper[A] = mapper
        self._source = Binding(bind, owner=f"SQLAlchemyRepository({entity_cls.__name__})")
        self._root = root_table(mapper, version_column)
        self.table = self._root.table

    @property
    def archivable(self) -> bool:
        """Whether ``delete`` archives (the model has an ``archived_at`` column)."""
        return self._root.archived_at is not None

    # -- helpers ---------------------------------------------------------------------------
    def _loaded_version(self, entity: A, uow: SQLAlchemyUnitOfWork | None) -> int:
        pending = uow.pending_version(entity) if uow is not None else None
        return entity.version if pending is None else pending

    def _finish(self, entity: A, uow: SQLAlchemyUnitOfWork | None, version: int) -> None:
        if uow is not None:
            uow.register(entity, new_version=version)
        else:
            set_persisted_version(entity, version)

    def _span(self, operation: str, uow: Any) -> AbstractContextManager[Any]:
        """A span of a repository operation on the aggregate's table (a no-op when off)."""
        if tracer_for() is None:
            return nullcontext()
        return db_span(self._source.traced_engine(uow), operation, self.table.name)

    async def _hydrate(self, session: AsyncSession, rows: Sequence[Any]) -> list[A]:
        """``_load`` for a search's rows, read on its session."""
        return await self._load(ConnectionExecutor(await session.connection()), rows)

    async def _load(self, runner: StatementRunner, rows: Sequence[Any]) -> list[A]:
        """The aggregates of root ``rows``, their children read on ``runner``."""
        root = self._root
        if not root.children.enabled or root.version_key is None:
            return await hydrate(runner, self.mapper, rows, version_key=root.version_key)
        child_rows: list[dict[str, list[Any]]] = []
        entities: list[A] = await hydrate(
            runner, self.mapper, rows, version_key=root.version_key, child_rows=child_rows
        )
        key = root.version_key
        for row, entity, children in zip(rows, entities, child_rows, strict=True):
            root.children.loaded(entity, children, mapping_of(row)[key])
        return entities

    def _reading(self, uow: IUnitOfWork | None) -> AbstractAsyncContextManager[StatementRunner]:
        """Where a load runs: the unit of work's transaction (no ORM session made), else a
        replica when the engine has replicas, else one statement on its own or, with child
        tables, a short transaction."""
        source = self._source
        if source.replicas is not None and source.owns_transaction(uow):
            # A query-side read with replicas: on one of them (each statement again on the
            # primary if the replica is found gone; see ``replicas/``).
            return source.reading(uow)
        if self._root.mapper.children:
            return source.transaction(uow)
        return source.single(uow)

    # -- writes ----------------------------------------------------------------------------
    async def add(self, entity: A, *, uow: IUnitOfWork | None = None) -> A:
        """Insert a new aggregate or update a loaded one (version-checked).

        In a unit of work a new aggregate is held for the batched ``INSERT`` (see the module):
        a taken id is then reported where the batch is written (``commit()``, ``uow.flush()``,
        the next statement), naming the aggregate.

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
        if joined is not None and self._deferred(entity, joined, loaded):
            return entity
        new_version = loaded + 1
        values = self.mapper.to_values(entity)
        diffs = None
        with self._span("save", joined):
            if joined is not None and loaded != 0:
                diffs = await self._update_in(joined, entity, values, loaded, new_version)
            else:
                async with self._source.transaction(joined) as runner:
                    await writes.save(self._root, runner, entity, values, loaded, new_version)
        self._finish(entity, joined, new_version)
        # Tagged with the version this save gives the aggregate: trusted by the next save
        # only if that version became the aggregate's (a rolled-back save leaves ``loaded``).
        self._root.children.saved(entity, values, new_version, diffs)
        return entity

    def _deferred(self, entity: A, uow: SQLAlchemyUnitOfWork, loaded: int) -> bool:
        """Hold a new aggregate (or one still held) for the unit of work's batched INSERT
        (:mod:`.batch`); ``False`` when it must be written now. ``loaded``: its version in
        this unit of work (``_loaded_version``)."""
        root = self._root
        held = uow.deferred(root)
        if held is None and loaded != 0:
            return False  # a loaded aggregate, nothing held: its UPDATE (the usual save)
        key = root.key(entity.id)
        version = 1
        if isinstance(held, PendingInserts) and held.holds(entity, key):
            # Added again before its INSERT was sent: the pending rows are replaced, and the
            # version moves on as an UPDATE would have moved it.
            version = loaded + 1
        elif loaded != 0 or key is None or key is NO_ROW:
            return False
        values = self.mapper.to_values(entity)
        uow.defer(root, lambda: PendingInserts(root, uow)).add(entity, key, values, version)
        self._finish(entity, uow, version)
        root.children.saved(entity, values, version)
        return True

    async def _update_in(
        self,
        uow: SQLAlchemyUnitOfWork,
        entity: A,
        values: dict[str, Any],
        loaded: int,
        new_version: int,
    ) -> list[Diff] | None:
        """A loaded aggregate saved in a unit of work: its root ``UPDATE`` now (a conflict is
        raised here, the transaction usable), its changed child rows held for one
        ``executemany`` per table with the other saves of the unit of work (the ``UPDATE``
        holds the row lock until commit, so they cannot change meanwhile). Returns what was
        compared (``None``: the child rows were rewritten, or there are none)."""
        root = self._root
        memo = root.children
        held = uow.deferred(memo)
        if isinstance(held, ChildChanges) and held.holds(entity):
            await uow.write_deferred()  # saved again: its first save's child rows go first
        executor = await uow.executor(keep=memo)
        await writes.update(
            root, executor, entity.id, values, values[root.pk_key], loaded, new_version
        )
        diffs = memo.diff(entity, values, loaded) if memo.enabled else None
        if diffs is not None:
            uow.defer(memo, lambda: ChildChanges(memo.first_table)).add(entity, diffs)
        elif root.mapper.children:
            await writes.rewrite_children(root, await uow.executor(), entity, values)
        return diffs

    async def delete(self, entity: Any, *, uow: IUnitOfWork | None = None) -> None:
        """Delete (or archive, for archivable models) by entity or by id.

        Given an aggregate, its loaded version is checked and a mismatch raises
        ``OptimisticConcurrencyError``; given an id, deleting a missing row does nothing.
        """
        root = self._root
        joined = self._source.resolve_uow(uow)
        is_entity = isinstance(entity, AggregateRoot)
        entity_id = entity.id if is_entity else entity
        key = root.key(entity_id)
        if key is NO_ROW:
            return
        expected = self._loaded_version(entity, joined) if is_entity else None
        with self._span("delete", joined):
            async with self._source.transaction(joined) as runner:
                rowcount = await writes.delete(root, runner, key, expected)
                if rowcount == 0 and is_entity:
                    actual = await root.actual_version(runner, key)
                    raise root.conflict(
                        entity_id, expected, actual, "changed or deleted concurrently"
                    )
        if is_entity and expected is not None and root.archived_at is not None:
            self._finish(entity, joined, expected + 1)

    async def restore(self, entity: Any, *, uow: IUnitOfWork | None = None) -> None:
        """Un-archive an archived aggregate (by entity or id); a no-op for live rows."""
        if self._root.archived_at is None:
            raise ConfigurationError(f"{self.db_model_cls.__name__} is not archivable")
        joined = self._source.resolve_uow(uow)
        entity_id = entity.id if isinstance(entity, AggregateRoot) else entity
        key = self._root.key(entity_id)
        if key is NO_ROW:
            return
        async with self._source.transaction(joined) as runner:
            await writes.restore(self._root, runner, key)

    # -- reads -----------------------------------------------------------------------------
    async def get(
        self,
        entity_id: Any,
        *,
        uow: IUnitOfWork | None = None,
        include_archived: bool = False,
    ) -> A | None:
        """The aggregate with ``entity_id`` (children loaded), or ``None``."""
        root = self._root
        key = root.key(entity_id)
        if key is NO_ROW:
            return None
        with self._span("get", uow):
            async with self._reading(uow) as runner:
                rows = await runner.fetch_mappings(root.get_statement(include_archived), {"k": key})
                found = await self._load(runner, rows)
        return found[0] if found else None

    async def get_many(
        self,
        entity_ids: Sequence[Any],
        *,
        uow: IUnitOfWork | None = None,
        include_archived: bool = False,
    ) -> list[A]:
        """The existing aggregates among ``entity_ids``, in the order of the ids given."""
        root = self._root
        keys = [k for k in dict.fromkeys(root.key(i) for i in entity_ids) if k is not NO_ROW]
        found: dict[Any, A] = {}
        with self._span("get_many", uow):
            async with self._reading(uow) as runner:
                for start in range(0, len(keys), IN_CHUNK):
                    chunk = keys[start : start + IN_CHUNK]
                    stmt = root.live(root.keyed_select.where(root.pk.in_(chunk)), include_archived)
                    rows = await runner.fetch_mappings(stmt)
                    for row, entity in zip(rows, await self._load(runner, rows), strict=True):
                        found[row[root.pk_key]] = entity
        return [found[k] for k in keys if k in found]

    async def list_all(
        self, *, uow: IUnitOfWork | None = None, include_archived: bool = False
    ) -> list[A]:
        """Every aggregate (ordered by id). Prefer ``search(...).stream()`` for big tables."""
        result = self.search(
            None,
            {"order_by": [self.mapper.attr_of[self._root.pk_key]]},
            uow=uow,
            include_archived=include_archived,
        )
        return await result.all()

    async def exists(
        self,
        entity_id: Any,
        *,
        uow: IUnitOfWork | None = None,
        include_archived: bool = False,
    ) -> bool:
        root = self._root
        key = root.key(entity_id)
        if key is NO_ROW:
            return False
        stmt = root.live(
            select(literal(1)).select_from(self.table).where(root.pk == key), include_archived
        )
        async with self._source.reading(uow) as runner:
            return bool(await runner.fetch(stmt.limit(1)))

    def search(
        self,
        spec_or_options: Any = None,
        options: Any = None,
        *,
        uow: IUnitOfWork | None = None,
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
        joined = self._source.resolve_uow(uow)
        return search(
            self._root,
            self._source,
            self._hydrate,
            spec_or_options,
            options,
            joined=joined,
            include_archived=include_archived,
        )
