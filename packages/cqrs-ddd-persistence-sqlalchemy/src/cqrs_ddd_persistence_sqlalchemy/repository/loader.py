"""Loading aggregates on Core statements: select rows, load child tables in one IN query per
relationship (per batch).

No ORM identity map is involved: rows go straight through the :class:`ModelMapper`, so a load is
``1 + number of child relationships`` queries whatever the number of aggregates. Statements run
through the execution seam (a :class:`StatementRunner`: a unit of work's transaction needs no
ORM session for them). Rows are read by column key, whatever their shape (SQLAlchemy's rows,
their mappings, or a driver's records from :func:`keyed_select` statements).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner, kept
from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper
from cqrs_ddd_persistence_sqlalchemy.repository.plans import ChildPlan

__all__ = ["IN_CHUNK", "column_select", "hydrate", "keyed_select", "mapping_of"]

#: Largest IN list per query (well under PostgreSQL's 32767 and SQLite's bind limits).
IN_CHUNK = 1000


def column_select(mapper: ModelMapper[Any]) -> sa.Select[Any]:
    """``SELECT`` of every mapped column of the table, keyed by ``Column.key``.

    Plain ``Table`` columns keep it a Core statement (no ORM compilation or loading); ORM
    criteria (specifications compile against the mapped class) may still be added.
    """
    columns = [attr.columns[0] for attr in mapper.model_mapper.column_attrs]
    return sa.select(*[c for c in columns if isinstance(c, sa.Column)])


def keyed_select(mapper: ModelMapper[Any]) -> sa.Select[Any]:
    """:func:`column_select` with every column labelled by its ``Column.key``: a driver's
    records (named by the SQL's labels) are then keyed as SQLAlchemy's rows are."""
    columns = [attr.columns[0] for attr in mapper.model_mapper.column_attrs]
    return sa.select(*[c.label(c.key) for c in columns if isinstance(c, sa.Column)])


def mapping_of(row: Any) -> Any:
    """``row`` read by column key: a SQLAlchemy row's mapping, else the row itself (a mapping
    or a driver's record)."""
    return getattr(row, "_mapping", row)


def _by_parent(plan: ChildPlan) -> sa.Select[Any]:
    """The child rows of one parent (``link`` columns equal to ``l_0``, ``l_1``…), built once
    per plan and kept: the execution seam may prepare it."""
    stmt = plan.mapper.statements.get(("by_parent", plan.field))
    if stmt is None:
        table = plan.mapper.table
        where = [
            table.c[child_key] == sa.bindparam(f"l_{i}")
            for i, (_, child_key) in enumerate(plan.link)
        ]
        stmt = kept(keyed_select(plan.mapper).where(*where).order_by(*plan.order_by))
        plan.mapper.statements[("by_parent", plan.field)] = stmt
    return stmt


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _link_filter(plan: ChildPlan, keys: Sequence[tuple[Any, ...]]) -> Any:
    columns = [plan.mapper.table.c[child_key] for _, child_key in plan.link]
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return sa.tuple_(*columns).in_(keys)


async def _children_of(
    runner: StatementRunner, plan: ChildPlan, rows: Sequence[Any]
) -> tuple[dict[tuple[Any, ...], list[Any]], dict[tuple[Any, ...], list[Any]]]:
    """Child entities and their rows' mappings, both grouped by the parent's link values."""
    keys = list(dict.fromkeys(tuple(r[p] for p, _ in plan.link) for r in rows))
    grouped: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    mappings: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    if not keys:
        return grouped, mappings
    if len(keys) == 1:  # one aggregate (``get``): one kept statement, no IN list
        params = {f"l_{i}": value for i, value in enumerate(keys[0])}
        batches = [await runner.fetch_mappings(_by_parent(plan), params)]
    else:
        base = keyed_select(plan.mapper)
        batches = [
            await runner.fetch_mappings(
                base.where(_link_filter(plan, chunk)).order_by(*plan.order_by)
            )
            for chunk in _chunks(keys)
        ]
    for child_rows in batches:
        entities = await hydrate(runner, plan.mapper, child_rows)
        for row, entity in zip(child_rows, entities, strict=True):
            parent = tuple(row[c] for _, c in plan.link)
            grouped[parent].append(entity)
            mappings[parent].append(row)
    return grouped, mappings


async def hydrate(
    runner: StatementRunner,
    mapper: ModelMapper[Any],
    rows: Sequence[Any],
    *,
    version_key: str | None = None,
    child_rows: list[dict[str, list[Any]]] | None = None,
) -> list[Any]:
    """Entities of ``rows`` (from :func:`column_select` or :func:`keyed_select`), children
    loaded by IN queries on ``runner``.

    ``child_rows`` (a list to fill) receives, per row, the mappings of its direct child rows
    by relationship field, as read (what ``repository/child_rows.py`` compares a save with).
    """
    if not rows:
        return []
    rows = [mapping_of(row) for row in rows]
    datas = [mapper.field_values(row, keyed=True) for row in rows]
    if child_rows is not None:
        child_rows.extend({} for _ in rows)
    for plan in mapper.children:
        grouped, mappings = await _children_of(runner, plan, rows)
        for index, (row, data) in enumerate(zip(rows, datas, strict=True)):
            parent = tuple(row[p] for p, _ in plan.link)
            found = grouped.get(parent, [])
            data[plan.field] = found if plan.many else (found[0] if found else None)
            if child_rows is not None:
                child_rows[index][plan.field] = mappings.get(parent, [])
    if version_key is None:
        return [mapper.build(data) for data in datas]
    return [
        mapper.build(data, version=row[version_key]) for row, data in zip(rows, datas, strict=True)
    ]
