"""New aggregates added in one unit of work, inserted together: one statement per table.

``repo.add(new_aggregate, uow=uow)`` inside a unit of work does not run its ``INSERT`` at once:
it holds the aggregate's row and child rows (taken at ``add``, so later changes to the object
are not written, as before) in a :class:`PendingInserts` the unit of work writes before the
next statement of its transaction or at commit (``uow/deferred.py``). Writing sends

- one ``INSERT … ON CONFLICT (pk) DO NOTHING RETURNING pk`` for every root row (SQLAlchemy's
  ``insertmanyvalues``: one statement per batch of up to 1000 rows);
- one ``INSERT`` (``executemany``) per child table, for the aggregates inserted; a child
  table with children of its own is written row by row (its keys may come from the database).

The guarantees of a single ``add`` hold:

- an id added twice in one batch (two objects) raises ``OptimisticConcurrencyError`` at the
  second ``add``; the same object added again replaces its pending rows (its version moves on,
  as the ``UPDATE`` it would have been);
- an id already in the table is missing from ``RETURNING``: the other aggregates are written
  with their children and ``OptimisticConcurrencyError`` names the first aggregate whose id was
  taken (the count of others in its message), raised where the batch was written (the commit,
  ``uow.flush()``, or the next statement); that aggregate is not registered with the unit of
  work (no version, no events), and the transaction stays usable;
- any other violation (a unique column, a foreign key) fails the batch's statement: its library
  error carries a note naming the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span
from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper
from cqrs_ddd_persistence_sqlalchemy.repository.root import RootTable
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["PendingInserts"]


class _Pending:
    __slots__ = ("children", "entity", "row")

    def __init__(self, entity: Any, row: dict[str, Any], children: list[list[Any]]) -> None:
        self.entity = entity
        self.row = row
        #: Per child plan of the mapper: ``(child entity, row)`` pairs.
        self.children = children


class PendingInserts:
    """The new aggregates of one repository held by one unit of work (see the module)."""

    __slots__ = ("_pending", "_root", "_uow")

    def __init__(self, root: RootTable, uow: SQLAlchemyUnitOfWork) -> None:
        self._root = root
        self._uow = uow
        self._pending: dict[Any, _Pending] = {}

    @property
    def table(self) -> sa.Table:
        return self._root.table

    def holds(self, entity: Any, key: Any) -> bool:
        """Whether this very object is pending under ``key``."""
        pending = self._pending.get(key)
        return pending is not None and pending.entity is entity

    def add(self, entity: Any, key: Any, values: dict[str, Any], version: int = 1) -> None:
        """Hold ``entity`` (root row ``values``, at ``version``) for the next write.

        Raises:
            OptimisticConcurrencyError: another object with this id is pending.
        """
        pending = self._pending.get(key)
        if pending is not None and pending.entity is not entity:
            raise self._root.conflict(
                entity.id, 0, 1, "another aggregate with this id was added in this unit of work"
            )
        row = dict(values)
        if self._root.version_key is not None:
            row[self._root.version_key] = version
        mapper = self._root.mapper
        children = [mapper.child_values(entity, plan, values) for plan in mapper.children]
        self._pending[key] = _Pending(entity, row, children)

    async def write(self, runner: StatementRunner) -> None:
        pending, self._pending = list(self._pending.values()), {}
        if not pending:
            return
        root = self._root
        # the batch's span: written where the unit of work flushes it (inside the span of
        # the statement or commit that needed it), one span for the whole batch
        with db_span(
            self._uow.engine, "save", root.table.name, **{"db.operation.batch.size": len(pending)}
        ):
            stmt = (
                dialect_for(runner.dialect).insert_ignore(root.table, [root.pk]).returning(root.pk)
            )
            rows = [p.row for p in pending]
            with _noted(root, len(rows)):
                # RETURNING, not the row count: which ids were taken, exactly.
                returned = await runner.fetch(stmt, rows if len(rows) > 1 else rows[0])
            written = {root.key(r[0]) for r in returned}
            inserted = pending
            if len(written) != len(pending):
                inserted = [p for p in pending if root.key(p.entity.id) in written]
            with _noted(root, len(inserted)):
                await _insert_children(
                    runner, root.mapper, [(p.entity, p.row, p.children) for p in inserted]
                )
            if len(inserted) != len(pending):
                await self._taken(
                    [p for p in pending if root.key(p.entity.id) not in written], runner
                )

    async def _taken(self, taken: list[_Pending], runner: StatementRunner) -> None:
        root = self._root
        for p in taken:
            self._uow.forget(p.entity)
        first = taken[0].entity
        column = root.version if root.version is not None else sa.literal(1)
        found = await runner.fetch(sa.select(column).where(root.pk == root.key(first.id)))
        more = f"; {len(taken) - 1} more ids of the batch were taken" if len(taken) > 1 else ""
        raise root.conflict(
            first.id, 0, found[0][0] if found else None, f"a row with this id already exists{more}"
        )


#: An aggregate (or child) to write the children of: the object, its row, and per child plan
#: of its mapper the ``(child, row)`` pairs.
_Parent = tuple[Any, Mapping[str, Any], list[list[Any]]]


async def _insert_children(
    runner: StatementRunner, mapper: ModelMapper[Any], parents: Sequence[_Parent]
) -> None:
    for index, plan in enumerate(mapper.children):
        pairs = [pair for _, _, children in parents for pair in children[index]]
        if not pairs:
            continue
        table = plan.mapper.table
        if not plan.mapper.children:
            rows = [row for _, row in pairs]
            await runner.execute(sa.insert(table), rows if len(rows) > 1 else rows[0])
            continue
        # Rows with children of their own: one at a time, their keys (maybe the database's)
        # read back for their children.
        sub = plan.mapper
        for child, row in pairs:
            found = await runner.fetch_mappings(
                sa.insert(table).values(row).returning(*table.primary_key)
            )
            merged = {**row, **found[0]}
            grand = [sub.child_values(child, p, merged) for p in sub.children]
            await _insert_children(runner, sub, [(child, merged, grand)])


class _noted:
    """Adds to a library error raised by a batch statement which batch it was."""

    __slots__ = ("_count", "_root")

    def __init__(self, root: RootTable, count: int) -> None:
        self._root = root
        self._count = count

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, CQRSDDDError) and self._count > 1:
            exc.add_note(
                f"raised by the batched INSERT of {self._count} {self._root.entity_name} "
                "aggregates added in one unit of work (add them one by one, with "
                "uow.flush() after each, to find which)"
            )
