"""``DurableQueue``: claim, lease, fence, retry and dead-letter rows of any queue table.

One primitive for the outbox relay, background jobs, scheduled commands and saga recovery
(ARCHITECTURE §5). The table needs the columns of :func:`~..tables.queue.queue_columns`.

- :meth:`DurableQueue.claim` takes up to ``n`` due rows in one statement and leases them for
  ``lease_seconds`` under a fresh fencing token. A row is *due* when it is pending, its
  ``available_at`` has passed and it is not leased (or its lease expired: a crashed worker's
  rows come back by the same query).
- Every terminal write (:meth:`complete`, :meth:`fail`, :meth:`release`, :meth:`heartbeat`)
  checks the token; a row whose lease was taken over is reported in :attr:`Outcome.lost`
  (``outcome.raise_if_lost()`` turns that into ``LeaseLostError``).
- :meth:`fail` counts the attempt and schedules the retry with the backoff; after the row's
  attempt limit it is dead (:meth:`dead_letters`, :meth:`requeue`).
- With ``key_column=`` only the oldest unfinished row of each key is claimable, so rows of one
  key are processed in ``id`` order even by many concurrent workers.

The verbs are the library's one vocabulary for queue-backed stores (outbox, jobs, scheduled
commands, saga recovery): ``claim / complete / fail / release / heartbeat / dead_letters /
requeue / purge / stats``.

Writes run in the caller's unit of work (``uow=`` or ambient) when there is one — a job can
complete in the same transaction as its effects — and otherwise on their own: one statement
atomic on its own goes through the engine's execution (autocommit on PostgreSQL), several in a
short transaction. A claim should run on its own so that the lease is visible at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    bindparam,
    exists,
    insert,
    select,
)

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.queue.admin import QueueAdmin
from cqrs_ddd_persistence_sqlalchemy.queue.claims import (
    Claim,
    sort_claims,
)
from cqrs_ddd_persistence_sqlalchemy.queue.settling import QueueSettling
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps, json_loads
from cqrs_ddd_persistence_sqlalchemy.tables.queue import PENDING_SQL
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime

__all__ = ["DurableQueue"]

_NOW = bindparam("q_now", type_=UTCDateTime())
#: Columns an enqueue stamps with the current time unless the rows carry them.
_STAMPED = ("available_at", "created_at")


def _encoded(value: Any) -> str | None:
    """A JSON column's value as JSON text (``None``: SQL ``NULL``, as ``JSONType`` stores it)."""
    return None if value is None else json_dumps(value)


def _same(values: list[Any]) -> bool:
    """Whether every item equals the first (``list.count`` compares in C, identity first).

    Only column values are compared, after JSON encoding: equal values store the same."""
    return values.count(values[0]) == len(values)


def _uniform_columns(rows: Sequence[Mapping[Any, Any]]) -> tuple[str, ...] | None:
    """The column names every row has (``None`` when the rows differ: one ``executemany``
    of SQLAlchemy's then reports the mismatch)."""
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        return tuple(str(name) for name in first)
    return None


class DurableQueue(QueueSettling, QueueAdmin):
    """Claim / complete / fail / release / heartbeat over one queue table (module docstring).

    Args:
        table: a table with :func:`~..tables.queue.queue_columns`.
        bind: any bind (see :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`). A queue built on
            a bare session claims and settles on that session's engine, in operations of its
            own (a lease or a completion left in a caller's uncommitted session would be
            invisible); only :meth:`enqueue` joins the session.
        lease_seconds: how long a claim is exclusive; extend long work with :meth:`heartbeat`.
        max_attempts: failed attempts after which :meth:`fail` dead-letters a row, unless
            the row has its own limit (a ``max_attempts`` column, read per row).
        backoff: retry delays.
        key_column: enable per-key ordering on this column.
        order_by: claim order (default ``id``; e.g. ``(t.c.priority.desc(), t.c.id)``).
        clock: the time source (aware UTC ``datetime``).

    Example::

        queue = DurableQueue(jobs_table, engine, lease_seconds=30, max_attempts=5)
        for claim in await queue.claim(10):
            try:
                await run(claim["payload"])
            except Exception as exc:
                await queue.fail([claim], error=repr(exc))
            else:
                (await queue.complete([claim])).raise_if_lost()
    """

    # -- enqueueing -------------------------------------------------------------------------
    async def enqueue(
        self,
        rows: Sequence[Mapping[Any, Any]],
        *,
        ignore_conflicts_on: Sequence[str] | None = None,
        uow: Any = None,
    ) -> None:
        """Insert rows (pending, due now unless they carry ``available_at``). With
        ``ignore_conflicts_on=("message_id",)`` a row whose unique key already exists is
        skipped (idempotent enqueue). Joins the unit of work, or the session the queue was
        built with.

        One row is one statement on its own (outside a unit of work: a single autocommit round
        trip on PostgreSQL, on asyncpg straight on the driver). Many rows with the same columns
        are one statement where the dialect has array parameters (PostgreSQL: ``INSERT …
        SELECT … FROM unnest(…)``, also one autocommit round trip outside a unit of work), else
        one ``executemany`` in one
        transaction: all or none either way.
        """
        if not rows:
            return
        now = self.clock()
        columns = _uniform_columns(rows)
        if columns is not None:
            await self._insert(rows, columns, now, ignore_conflicts_on, uow)
            return
        # Rows of different columns: SQLAlchemy's ``executemany`` reports the mismatch.
        params = [{"available_at": now, "created_at": now, **row} for row in rows]
        async with self.binding.transaction(uow) as run:
            if ignore_conflicts_on:
                dialect = dialect_for(run.dialect)
                stmt: Any = dialect.insert_ignore(self.table, ignore_conflicts_on)
            else:
                stmt = insert(self.table)
            await run.execute(stmt, params)

    async def _insert(
        self,
        rows: Sequence[Mapping[Any, Any]],
        columns: tuple[str, ...],
        now: datetime,
        ignore_conflicts_on: Sequence[str] | None,
        uow: Any,
    ) -> None:
        """Rows with the same ``columns`` in one statement, kept (the driver's fast path on
        asyncpg): one row with scalar parameters (``DialectSupport.insert_one``), many with one
        array per column where the dialect has arrays (``insert_many``), else an
        ``executemany``. JSON values are encoded here, once, by the library's codec."""
        known = self._insert_columns.get(columns)
        if known is None:
            names = columns + tuple(c for c in _STAMPED if c not in columns)
            json_columns = tuple(c for c in names if isinstance(self.table.c[c].type, JSONType))
            known = self._insert_columns[columns] = (names, json_columns)
        names, json_columns = known
        conflict = tuple(ignore_conflicts_on or ())
        dialect = self.dialect(uow)
        if len(rows) == 1:
            row = rows[0]
            params = {
                name: (_encoded(row[name]) if name in json_columns else row[name])
                if name in columns
                else now
                for name in names
            }

            def build_one(d: DialectSupport) -> Any:
                return d.insert_one(
                    self.table, names, json_columns=json_columns, ignore_conflicts_on=conflict
                )

            one = self.statement(("enqueue_one", names, conflict), build_one, dialect)
            # One statement, atomic on its own: outside a unit of work it runs alone (one
            # autocommit round trip where the dialect allows it, not BEGIN / INSERT / COMMIT).
            async with self.binding.single(uow) as run:
                await run.execute(one, params)
            return

        arrays: dict[str, list[Any]] = {}
        for name in names:
            values: list[Any]
            if name in columns:
                if name in json_columns:
                    values = [None if (v := row[name]) is None else json_dumps(v) for row in rows]
                else:
                    values = [row[name] for row in rows]
            else:
                values = [now] * len(rows)
            arrays[name] = values
        await self._insert_arrays(arrays, names, json_columns, conflict, dialect, uow)

    async def enqueue_columns(
        self,
        columns: Mapping[str, list[Any]],
        *,
        ignore_conflicts_on: Sequence[str] | None = None,
        json_text: Collection[str] = (),
        uow: Any = None,
    ) -> None:
        """:meth:`enqueue` with the rows given column by column: one list per column, every
        list as long (a producer that has its values by column, such as a batch of jobs, then
        builds no mapping per row). The same statement and guarantees as :meth:`enqueue`.

        ``json_text`` names JSON columns whose values are JSON text already (``None``: SQL
        ``NULL``); the others' values are encoded here, as :meth:`enqueue` does."""
        lists = list(columns.values())
        count = len(lists[0]) if lists else 0
        if any(len(values) != count for values in lists):
            raise ConfigurationError("enqueue_columns: every column needs as many values")
        if count < 2:
            rows = [
                {
                    name: json_loads(values[i])
                    if name in json_text and values[i] is not None
                    else values[i]
                    for name, values in columns.items()
                }
                for i in range(count)
            ]
            await self.enqueue(rows, ignore_conflicts_on=ignore_conflicts_on, uow=uow)
            return
        given = tuple(columns)
        known = self._insert_columns.get(given)
        if known is None:
            names = given + tuple(c for c in _STAMPED if c not in given)
            json_columns = tuple(c for c in names if isinstance(self.table.c[c].type, JSONType))
            known = self._insert_columns[given] = (names, json_columns)
        names, json_columns = known
        now = self.clock()
        arrays: dict[str, list[Any]] = {}
        for name in names:
            if name not in columns:
                arrays[name] = [now] * count
            elif name in json_columns and name not in json_text:
                arrays[name] = [None if v is None else json_dumps(v) for v in columns[name]]
            else:
                arrays[name] = columns[name]
        conflict = tuple(ignore_conflicts_on or ())
        await self._insert_arrays(arrays, names, json_columns, conflict, self.dialect(uow), uow)

    async def _insert_arrays(
        self,
        arrays: dict[str, list[Any]],
        names: tuple[str, ...],
        json_columns: tuple[str, ...],
        conflict: tuple[str, ...],
        dialect: DialectSupport,
        uow: Any,
    ) -> None:
        """Many rows, one list per column (JSON already encoded), in one statement."""
        if not dialect.supports_arrays:
            many = [
                dict(zip(names, values, strict=True))
                for values in zip(*arrays.values(), strict=True)
            ]
            stmt = self.statement(
                ("enqueue_many", names, (), conflict),
                lambda d: d.insert_many(
                    self.table, names, json_columns=json_columns, ignore_conflicts_on=conflict
                ),
                dialect,
            )
            async with self.binding.transaction(uow) as executor:
                await executor.execute(stmt, many)
            return
        # A column with the same value in every row (a time stamp, a job type, a default
        # priority) is sent once, not as an array: less to encode, send and unnest.
        shared = tuple(name for name in names if _same(arrays[name]))
        if len(shared) == len(names):
            shared = shared[1:]  # the batch's rows come from one array at least
        batch: dict[str, Any] = {
            name: values[0] if name in shared else values for name, values in arrays.items()
        }
        stmt = self.statement(
            ("enqueue_many", names, shared, conflict),
            lambda d: d.insert_many(
                self.table,
                names,
                json_columns=json_columns,
                shared_columns=shared,
                ignore_conflicts_on=conflict,
            ),
            dialect,
        )
        # One statement, atomic on its own: outside a unit of work one autocommit round trip,
        # like a single row.
        async with self.binding.single(uow) as run:
            await run.execute(stmt, batch)

    # -- claiming --------------------------------------------------------------------------
    async def claim(
        self,
        limit: int,
        *,
        lease_seconds: float | None = None,
        where: ColumnElement[bool] | None = None,
        only: Mapping[str, Sequence[Any]] | None = None,
        uow: Any = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` due rows (one statement); returned in claim order.

        ``only`` narrows the candidates to rows whose column holds one of the given values
        (e.g. ``only={"job_type": ["send_email", "resize"]}``): the statement is built once and
        the values travel as parameters. ``where`` narrows them by any expression (e.g.
        ``jobs.c.queue == "emails"``), at the price of building the statement on every call.
        """
        if limit <= 0:
            return []
        now = self.clock()
        until = now + (timedelta(seconds=lease_seconds) if lease_seconds else self.lease)
        token = uuid.uuid4().hex
        params: dict[str, Any] = {
            "q_now": now,
            "q_limit": limit,
            "q_token": token,
            "q_until": until,
        }
        keys: tuple[str, ...] = ()
        if only:
            keys = tuple(sorted(only))
            if keys not in self._only_checked:
                missing = [k for k in keys if k not in self.table.c]
                if missing:
                    raise ConfigurationError(f"claim(only=...): no columns {missing} in the table")
                self._only_checked.add(keys)
            for i, key in enumerate(keys):
                params[f"q_only_{i}"] = list(only[key])
        if where is None:
            rows = await self.run(
                ("claim", keys), lambda d: self._claim_statement(d, None, keys), params, uow=uow
            )
        else:
            async with self.transaction(uow) as executor:
                stmt = self._claim_statement(dialect_for(executor.dialect), where, keys)
                rows = await executor.fetch_mappings(stmt, params)
        claims = [
            Claim(
                id=row["id"],
                token=token,
                attempts=row["attempts"],
                locked_until=until,
                values=dict(row),
            )
            for row in rows
        ]
        sort_claims(claims, self._sort_keys)
        return claims

    def _claim_statement(
        self,
        dialect: DialectSupport,
        where: ColumnElement[bool] | None,
        only: Sequence[str] = (),
    ) -> Any:
        t = self.table
        due = self.due_condition(bindparam("q_now", type_=UTCDateTime()))
        candidates = select(t.c.id).where(due)
        if where is not None:
            candidates = candidates.where(where)
        for i, name in enumerate(only):
            candidates = candidates.where(dialect.one_of(t.c[name], f"q_only_{i}"))
        if self.key_column is not None:
            key = t.c[self.key_column]
            prior = t.alias("prior")
            candidates = candidates.where(
                ~exists().where(
                    prior.c[self.key_column] == key,
                    prior.c.id < t.c.id,
                    prior.c.status == PENDING_SQL,
                )
            )
        candidates = candidates.order_by(*self.order_by).limit(
            bindparam("q_limit", type_=Integer())
        )
        values = {
            "lease_token": bindparam("q_token", type_=String()),
            "locked_until": bindparam("q_until", type_=UTCDateTime()),
        }
        return dialect.claim_statement(t, candidates, due, values)
