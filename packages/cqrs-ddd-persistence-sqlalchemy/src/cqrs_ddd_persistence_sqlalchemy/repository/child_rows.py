"""Child rows: written in full (:func:`insert_children`, :func:`delete_children`), or, for a
loaded aggregate whose rows are remembered (:class:`ChildRowMemo`), only what changed.

Without the memo, saving an aggregate rewrites its child tables (``DELETE`` every row, ``INSERT``
them again): a one-line change of a 10-line order cost 2 statements and 11 row writes, and the
child rows' identity churned (anything referencing a line, or a trigger on it, saw a delete).
With it, a save compares the rows the aggregate would write now with the rows it had when it
was loaded (or last saved) and sends ``DELETE`` for rows gone, ``UPDATE`` for rows changed and
``INSERT`` for rows new — one ``executemany`` each, none when nothing changed.

The remembered rows are trusted only while they describe the database:

- they carry the aggregate version they were taken at, and a save uses them only when that is
  the version its ``UPDATE … WHERE version = :loaded`` checks — a save rolled back (its version
  never became the aggregate's) or any other version means the full rewrite;
- the root's version-checked ``UPDATE`` runs first and locks the row until commit, so no other
  writer can change the children between the check and the child statements;
- only tables where this is safe take part: the repository has a version column, the child
  table is a leaf (no children of its own), every primary key value comes from the entity, and
  it has no unique constraint besides the key (``UPDATE``s in place could collide with one
  mid-save, e.g. two lines swapping positions; the rewrite never does).

Anything else keeps the rewrite. Loading costs nothing extra: what is kept is the row mappings
the loader read anyway; they are compared only when the aggregate is saved. A value that is
the very object the entity holds and is not immutable (a list in a JSON column the entity may
have changed in place) always counts as changed. Entries are keyed by object identity and
dropped with the aggregate (a weak reference), so nothing outlives the objects the application
holds.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
import weakref
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.repository.loader import column_select
from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper
from cqrs_ddd_persistence_sqlalchemy.repository.plans import ChildPlan

__all__ = ["ChildChanges", "ChildRowMemo", "delete_children", "insert_children"]

#: One relationship's rows: primary key values -> column values.
Keyed = dict[tuple[Any, ...], Mapping[str, Any]]
#: What is remembered per relationship field: keyed rows, or the mappings read at load.
State = dict[str, Keyed | Sequence[Mapping[str, Any]]]

#: Values nobody can change in place.
_IMMUTABLE = (
    str,
    int,
    float,
    bool,
    Decimal,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
    bytes,
    enum.Enum,
    type(None),
)
_MISSING: Any = object()


def _eligible(plan: ChildPlan) -> tuple[str, ...] | None:
    """The child table's primary key column keys, or ``None`` when it must be rewritten."""
    table = plan.mapper.table
    if plan.mapper.children or not table.primary_key.columns:
        return None
    if any(isinstance(c, sa.UniqueConstraint) for c in table.constraints):
        return None
    if any(index.unique for index in table.indexes):
        return None
    return tuple(str(c.key) for c in table.primary_key.columns)


def _keyed(rows: Sequence[Mapping[str, Any]], pk: tuple[str, ...]) -> Keyed | None:
    """``rows`` by primary key; ``None`` when a key is missing (database-assigned) or repeated."""
    by_key: Keyed = {}
    for row in rows:
        key = tuple(row.get(k) for k in pk)
        if None in key or key in by_key:
            return None
        by_key[key] = row
    return by_key


def _changed(after: Mapping[str, Any], before: Mapping[str, Any]) -> bool:
    for column, value in after.items():
        old = before.get(column, _MISSING)
        if old is value:
            if not isinstance(value, _IMMUTABLE):
                return True  # the entity's own object: it may have been changed in place
        elif old is _MISSING or old != value:
            return True
    return False


class ChildRowMemo:
    """Per repository: the child rows of each loaded aggregate, tagged with its version."""

    def __init__(self, mapper: ModelMapper[Any], *, versioned: bool) -> None:
        self._mapper = mapper
        keys = [(plan, _eligible(plan)) for plan in mapper.children]
        #: Every child plan with its key columns, or empty: this aggregate is always rewritten.
        self._plans: tuple[tuple[ChildPlan, tuple[str, ...]], ...] = (
            tuple((plan, pk) for plan, pk in keys if pk is not None)
            if versioned and keys and all(pk is not None for _, pk in keys)
            else ()
        )
        self._rows: dict[int, tuple[weakref.ref[Any], int, State]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._plans)

    @property
    def first_table(self) -> sa.Table:
        """The table of the first child plan taking part (``enabled`` only)."""
        return self._plans[0][0].mapper.table

    def _rows_now(self, entity: Any, parent: Mapping[str, Any]) -> dict[str, Keyed] | None:
        rows: dict[str, Keyed] = {}
        for plan, pk in self._plans:
            keyed = _keyed([row for _, row in self._mapper.child_values(entity, plan, parent)], pk)
            if keyed is None:
                return None
            rows[plan.field] = keyed
        return rows

    def loaded(self, entity: Any, child_rows: Mapping[str, Sequence[Any]], version: int) -> None:
        """``entity`` was just built from the database at ``version`` with these child row
        mappings (``loader.hydrate(child_rows=…)``)."""
        if self._plans:
            self._keep(entity, version, dict(child_rows))

    def saved(
        self,
        entity: Any,
        parent: Mapping[str, Any],
        version: int,
        diffs: list[Diff] | None = None,
    ) -> None:
        """``entity`` was written as it is now; its rows are the database's at ``version``
        once that version is the aggregate's (``diffs``: what :meth:`diff` just compared, whose
        rows now are those)."""
        if not self._plans:
            return
        if diffs is not None:
            self._keep(entity, version, {plan.field: after for plan, _, _, after in diffs})
            return
        rows = self._rows_now(entity, parent)
        if rows is None:
            self._rows.pop(id(entity), None)
        else:
            self._keep(entity, version, dict(rows))

    def _keep(self, entity: Any, version: int, state: State) -> None:
        ident = id(entity)
        entry = self._rows.get(ident)
        if entry is not None and entry[0]() is entity:
            self._rows[ident] = (entry[0], version, state)
            return
        memo = self._rows

        def dropped(dead: weakref.ref[Any]) -> None:
            # Only this object's entry: its id may already belong to another one.
            current = memo.get(ident)
            if current is not None and current[0] is dead:
                del memo[ident]

        try:
            ref = weakref.ref(entity, dropped)
        except TypeError:  # not weakly referenceable: never remembered, always rewritten
            return
        memo[ident] = (ref, version, state)

    def diff(self, entity: Any, parent: Mapping[str, Any], loaded: int) -> list[Diff] | None:
        """Per child table, the rows remembered at ``loaded`` and the rows now; ``None`` when
        the rows remembered do not describe version ``loaded`` (the caller rewrites them all)."""
        entry = self._rows.get(id(entity))
        if entry is None or entry[0]() is not entity or entry[1] != loaded:
            return None
        after = self._rows_now(entity, parent)
        if after is None:
            return None
        diffs: list[Diff] = []
        for plan, pk in self._plans:
            state = entry[2].get(plan.field)
            keyed = state if isinstance(state, dict) else _keyed(state or [], pk)
            if keyed is None:
                return None
            diffs.append((plan, pk, keyed, after[plan.field]))
        return diffs

    async def save(
        self,
        runner: StatementRunner,
        entity: Any,
        parent: Mapping[str, Any],
        loaded: int,
    ) -> bool:
        """Write only the child rows that changed since ``loaded``; ``False`` when the rows
        remembered do not describe version ``loaded`` (the caller rewrites them all)."""
        diffs = self.diff(entity, parent, loaded)
        if diffs is None:
            return False
        changes = ChildChanges(self.first_table)
        changes.add(entity, diffs)
        await changes.write(runner)
        return True  # the caller then records the rows written (``saved``)


#: One child table of one save: (plan, key columns, rows before, rows now).
Diff = tuple[ChildPlan, tuple[str, ...], Keyed, Keyed]


class ChildChanges:
    """The child-row writes of one or more saves: one ``executemany`` per table and kind
    (``DELETE`` of rows gone, ``UPDATE`` per set of changed columns, ``INSERT`` of new rows),
    deletes first. Saves of different aggregates touch different rows, so grouping them keeps
    each save's outcome; two saves of one aggregate must not share one (``holds``)."""

    __slots__ = ("_entities", "_tables", "table")

    def __init__(self, table: sa.Table) -> None:
        #: The first child table (batches are written in their tables' foreign-key order).
        self.table = table
        #: plan field -> (plan, key columns, deletes, updates by columns, inserts)
        self._tables: dict[
            str, tuple[ChildPlan, tuple[str, ...], list[Any], dict[Any, Any], list[Any]]
        ] = {}
        self._entities: dict[int, Any] = {}

    def holds(self, entity: Any) -> bool:
        return self._entities.get(id(entity)) is entity

    def add(self, entity: Any, diffs: list[Diff]) -> None:
        self._entities[id(entity)] = entity
        for plan, pk, before, after in diffs:
            entry = self._tables.get(plan.field)
            if entry is None:
                entry = self._tables[plan.field] = (plan, pk, [], {}, [])
            _, _, gone, shapes, new = entry
            gone.extend(
                {f"pk_{k}": value for k, value in zip(pk, key, strict=True)}
                for key in before
                if key not in after
            )
            for key, row in after.items():
                if key not in before:
                    new.append(dict(row))
                    continue
                if not _changed(row, before[key]):
                    continue
                # One UPDATE shape per set of columns (optional fields may leave some out).
                columns = tuple(sorted(k for k in row if k not in pk))
                if not columns:
                    continue  # only key columns: nothing an UPDATE could change
                params = {f"v_{k}": row[k] for k in columns}
                params.update({f"pk_{k}": row[k] for k in pk})
                shapes.setdefault(columns, []).append(params)

    async def write(self, runner: StatementRunner) -> None:
        for plan, pk, gone, shapes, new in self._tables.values():
            table = plan.mapper.table
            where = [table.c[k] == sa.bindparam(f"pk_{k}") for k in pk]
            if gone:
                await runner.execute(sa.delete(table).where(*where), _many(gone))
            for columns, params in shapes.items():
                values: dict[str, Any] = {k: sa.bindparam(f"v_{k}") for k in columns}
                await runner.execute(sa.update(table).where(*where).values(values), _many(params))
            if new:
                await runner.execute(sa.insert(table), _many(new))


def _many(params: list[dict[str, Any]]) -> Any:
    return params if len(params) > 1 else params[0]


async def delete_children(
    runner: StatementRunner, mapper: ModelMapper[Any], parent: Mapping[str, Any]
) -> None:
    """Delete the child rows (deepest first) of the aggregate whose root values are ``parent``."""
    for plan in mapper.children:
        table = plan.mapper.table
        where = [table.c[c] == parent[p] for p, c in plan.link]
        if plan.mapper.children:
            sub_rows = await runner.fetch_mappings(column_select(plan.mapper).where(*where))
            for row in sub_rows:
                await delete_children(runner, plan.mapper, dict(row))
        await runner.execute(sa.delete(plan.mapper.table).where(*where))


async def insert_children(
    runner: StatementRunner, mapper: ModelMapper[Any], entity: Any, parent: Mapping[str, Any]
) -> None:
    """Insert the child rows of ``entity`` (one ``executemany`` per relationship and level)."""
    for plan in mapper.children:
        pairs = mapper.child_values(entity, plan, parent)
        if not pairs:
            continue
        if plan.mapper.children:
            for child, row in pairs:
                (pk,) = await runner.fetch_mappings(
                    sa.insert(plan.mapper.table)
                    .values(row)
                    .returning(*plan.mapper.table.primary_key)
                )
                merged = {**row}
                for column in plan.mapper.table.primary_key:
                    merged[column.key] = pk[column.key]
                await insert_children(runner, plan.mapper, child, merged)
        else:
            rows = [row for _, row in pairs]
            await runner.execute(sa.insert(plan.mapper.table), rows if len(rows) > 1 else rows[0])
