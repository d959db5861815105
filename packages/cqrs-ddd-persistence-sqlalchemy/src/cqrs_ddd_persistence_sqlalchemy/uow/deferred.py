"""Writes a unit of work holds back and sends in batches: one statement per table.

A store may *defer* work to the unit of work's transaction instead of running it at once (the
repository defers the ``INSERT`` of new aggregates, so that the seed's
``for order in orders: await repo.add(order, uow=uow)`` sends one ``INSERT`` per table, as the
ORM's ``insertmanyvalues`` does). What is deferred is written before anything else runs on
the transaction, so nothing can observe that it was held back:

- before a store's statement (``uow.executor()``, ``Binding.transaction`` / ``Binding.session``),
  ``uow.flush()``, a savepoint, and the commit;
- before the caller's own statements on ``uow.session`` (``execute``, ``get``, ``scalars``, an
  ORM flush): the session's ``do_orm_execute`` and ``before_flush`` events write them on the
  session's connection, installed only while something is deferred.

Not covered: a statement run on a connection taken from the session
(``(await uow.session.connection()).execute(...)``) — call ``await uow.flush()`` first.

Batches are written in foreign-key order of their tables (a parent table's batch first), and
within a table in the order the aggregates were added. A rollback forgets them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.ddl import sort_tables

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Params, StatementRunner
from cqrs_ddd_persistence_sqlalchemy.execution.reference import raise_translated

__all__ = ["DeferredWrite", "DeferredWrites"]


class DeferredWrite(Protocol):
    """Work held back by a store until the unit of work's next statement or commit."""

    @property
    def table(self) -> sa.Table:
        """The table written first (batches are ordered by its foreign keys)."""
        ...

    async def write(self, runner: StatementRunner) -> None:
        """Send the held-back statements on ``runner`` (the unit of work's transaction)."""
        ...


W = TypeVar("W", bound=DeferredWrite)


class DeferredWrites:
    """The deferred writes of one unit of work's transaction, keyed by their store."""

    __slots__ = ("_watched", "_writes")

    def __init__(self) -> None:
        self._writes: dict[Any, DeferredWrite] = {}
        self._watched: Session | None = None

    def __bool__(self) -> bool:
        return bool(self._writes)

    def get(self, key: Any) -> DeferredWrite | None:
        return self._writes.get(key)

    def setdefault(self, key: Any, make: Callable[[], W]) -> W:
        found = self._writes.get(key)
        if found is None:
            found = self._writes[key] = make()
        return found  # type: ignore[return-value]

    def clear(self) -> None:
        self._writes = {}

    def take(self, keep: Any = None) -> list[DeferredWrite]:
        """Every deferred write (but ``keep``'s), parent tables first; forgotten here (written
        once)."""
        kept = self._writes.pop(keep, None) if keep is not None else None
        writes, self._writes = list(self._writes.values()), {}
        if kept is not None:
            self._writes[keep] = kept
        if len(writes) < 2:
            return writes
        rank = {table: i for i, table in enumerate(sort_tables([w.table for w in writes]))}
        return sorted(writes, key=lambda w: rank.get(w.table, 0))

    async def write(self, runner: StatementRunner, *, keep: Any = None) -> None:
        for deferred in self.take(keep):
            await deferred.write(runner)

    # -- the caller's own statements on the ORM session --------------------------------------
    def watch(self, session: Session) -> None:
        """Write what is deferred before ``session`` runs a statement or flushes."""
        if self._watched is session:
            return
        self.unwatch()
        event.listen(session, "do_orm_execute", self._before_execute)
        event.listen(session, "before_flush", self._before_flush)
        self._watched = session

    def unwatch(self) -> None:
        session, self._watched = self._watched, None
        if session is not None:
            event.remove(session, "do_orm_execute", self._before_execute)
            event.remove(session, "before_flush", self._before_flush)

    def _before_execute(self, state: Any) -> None:
        self._write_on(state.session)

    def _before_flush(self, session: Session, context: Any, instances: Any) -> None:
        self._write_on(session)

    def _write_on(self, session: Session) -> None:
        if not self._writes:
            return
        # Session events are synchronous; the session's connection runs statements
        # synchronously here (SQLAlchemy's asyncio bridge is active inside them), so the
        # writes' coroutine, whose every await is a call on that connection, completes in one
        # step.
        _run_to_end(self.write(_SyncRunner(session.connection())))


def _run_to_end(coro: Coroutine[Any, Any, None]) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("a deferred write waited on something else than its connection")


class _SyncRunner:
    """A :class:`StatementRunner` on a synchronous SQLAlchemy ``Connection``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    def _run(self, statement: Executable, params: Params) -> Any:
        try:
            return self._conn.execute(statement, params)
        except Exception as exc:
            raise_translated(exc)

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        return self._run(statement, params).all()  # type: ignore[no-any-return]

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        return self._run(statement, params).mappings().all()  # type: ignore[no-any-return]

    async def execute(self, statement: Executable, params: Params = None) -> int:
        return int(getattr(self._run(statement, params), "rowcount", -1))
