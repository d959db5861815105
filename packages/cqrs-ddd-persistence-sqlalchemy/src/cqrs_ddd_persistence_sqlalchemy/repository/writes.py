"""Writing aggregates: version-checked Core statements, checked by row count.

A new aggregate (loaded version 0) is one ``INSERT … ON CONFLICT (pk) DO NOTHING``; an existing
one is one ``UPDATE … WHERE id = :id AND version = :loaded`` setting ``version = :loaded + 1``.
No row written means somebody else got there first (or deleted the row): the conflict is raised
as :class:`~cqrs_ddd_core.errors.OptimisticConcurrencyError` with the transaction still usable.
Child rows follow the root (:mod:`.child_rows`). Deletes archive archivable rows instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import SerializationFailureError
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.mixins.auditable import current_actor
from cqrs_ddd_persistence_sqlalchemy.repository.child_rows import delete_children, insert_children
from cqrs_ddd_persistence_sqlalchemy.repository.root import RootTable
from cqrs_ddd_persistence_sqlalchemy.types.clock import utcnow

__all__ = ["delete", "restore", "rewrite_children", "save", "update"]


async def save(
    root: RootTable,
    runner: StatementRunner,
    entity: Any,
    values: dict[str, Any],
    loaded: int,
    new_version: int,
) -> None:
    """Insert ``entity`` (``loaded == 0``) or update it from version ``loaded``, children too.

    Raises:
        OptimisticConcurrencyError: the id is taken, or the row changed or went since ``loaded``.
    """
    key = values[root.pk_key]
    if loaded == 0:
        await _insert(root, runner, entity.id, values, key)
        await insert_children(runner, root.mapper, entity, values)
        return
    await update(root, runner, entity.id, values, key, loaded, new_version)
    # The root's UPDATE checked ``loaded`` and holds its row lock: the children remembered at
    # ``loaded`` are the database's, so only changes are written.
    if not await root.children.save(runner, entity, values, loaded):
        await rewrite_children(root, runner, entity, values)


async def rewrite_children(
    root: RootTable, runner: StatementRunner, entity: Any, values: dict[str, Any]
) -> None:
    """Replace every child row of ``entity`` (``DELETE`` them, ``INSERT`` them again)."""
    await delete_children(runner, root.mapper, values)
    await insert_children(runner, root.mapper, entity, values)


async def _insert(
    root: RootTable, runner: StatementRunner, entity_id: Any, values: dict[str, Any], key: Any
) -> None:
    row = dict(values)
    if root.version_key is not None:
        row[root.version_key] = 1
    stmt = (dialect_for(runner.dialect).insert_ignore(root.table, [root.pk]).values(row)).returning(
        root.pk
    )
    # RETURNING, not the row count: drivers do not all report one for an INSERT (psycopg
    # through SQLAlchemy says -1).
    if not await runner.fetch(stmt):
        actual = await root.actual_version(runner, key)
        raise root.conflict(entity_id, 0, actual, "a row with this id already exists")


async def update(
    root: RootTable,
    runner: StatementRunner,
    entity_id: Any,
    values: dict[str, Any],
    key: Any,
    loaded: int,
    new_version: int,
) -> None:
    """``UPDATE`` the root row from version ``loaded`` to ``new_version`` (one statement, built
    once per repository and set of columns).

    Raises:
        OptimisticConcurrencyError: the row changed or went since ``loaded``.
    """
    stmt, params = root.update_statement(values, key, loaded, new_version)
    try:
        rowcount = await runner.execute(stmt, params)
    except SerializationFailureError as exc:  # REPEATABLE READ / SERIALIZABLE loser
        raise root.conflict(entity_id, loaded, None, "concurrent update") from exc
    if rowcount == 0:
        column = root.version if root.version is not None else sa.literal(1)
        found = await runner.fetch(sa.select(column).where(root.pk == key))
        actual = found[0][0] if found else None
        raise root.conflict(entity_id, loaded, actual, "changed or deleted concurrently")


async def delete(root: RootTable, runner: StatementRunner, key: Any, expected: int | None) -> int:
    """Delete (or archive) the row with ``key``, at version ``expected`` when given.

    Returns the number of rows deleted or archived (0 or 1).
    """
    where: list[ColumnElement[bool]] = [root.pk == key]
    if expected is not None and root.version is not None:
        where.append(root.version == expected)
    if root.archived_at is not None:
        return await _archive(root, runner, where)
    if root.mapper.children:
        found = await runner.fetch_mappings(root.select.where(*where).with_for_update())
        if found:
            await delete_children(runner, root.mapper, dict(found[0]))
    return await runner.execute(sa.delete(root.table).where(*where))


async def _archive(
    root: RootTable, runner: StatementRunner, where: list[ColumnElement[bool]]
) -> int:
    changes: dict[str, Any] = {root.archived_at.key: utcnow()}
    if root.archived_by is not None:
        changes[root.archived_by.key] = current_actor()
    if root.version is not None:
        changes[root.version.key] = root.version + 1
    stmt = sa.update(root.table).where(*where, root.archived_at.is_(None)).values(changes)
    return await runner.execute(stmt)


async def restore(root: RootTable, runner: StatementRunner, key: Any) -> None:
    """Un-archive the archived row with ``key`` (a no-op for a live row)."""
    changes: dict[str, Any] = {root.archived_at.key: None}
    if root.archived_by is not None:
        changes[root.archived_by.key] = None
    if root.version is not None:
        changes[root.version.key] = root.version + 1
    stmt = (
        sa.update(root.table).where(root.pk == key, root.archived_at.is_not(None)).values(changes)
    )
    await runner.execute(stmt)
