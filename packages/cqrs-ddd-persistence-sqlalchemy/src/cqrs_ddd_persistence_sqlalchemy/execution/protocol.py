"""The execution seam: the one way the library's statements reach a database.

Every store builds its statements from ``Table`` objects and runs them through one of two
small protocols:

- :class:`Executor` runs statements on one connection *as it is*: inside a unit of work's
  transaction, inside a short transaction of the store's own, or on a held connection where
  each statement commits on its own.
- :class:`Execution` is one engine's way of running an operation that is not part of a unit of
  work: a single statement atomic on its own (autocommit where the dialect allows it, a short
  transaction otherwise), a short transaction, or a connection held for a worker loop
  (:meth:`Execution.pinned`).

Rows come back in two shapes: :meth:`Executor.fetch` gives positional rows (``row[0]``) and
:meth:`Executor.fetch_mappings` rows read by column name (``row["id"]``, ``dict(row)``). Code
above the seam uses nothing else of a row, so any implementation may hand out its driver's own
record type.

Every method raises the library's errors (``cqrs_ddd_core.errors``): driver exceptions are
translated here, at the seam, by :func:`cqrs_ddd_persistence_sqlalchemy.errors.translate`.

Implementations: :mod:`.reference` (SQLAlchemy's public API, any async driver) and
:mod:`.asyncpg` (the fast path: compiled statements sent on asyncpg's connection).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

__all__ = [
    "Execution",
    "Executor",
    "Params",
    "Pin",
    "StatementRunner",
    "UnitTransaction",
    "is_kept",
    "kept",
]

#: Named parameters of one execution, or a list of them (``executemany``).
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None

# id(statement) -> a weak reference to it: the statements marked with :func:`kept`.
_KEPT: dict[int, weakref.ref[Any]] = {}

_S = TypeVar("_S", bound=Executable)


def kept(statement: _S) -> _S:
    """Mark ``statement`` as built once and run many times (a module constant, a statement a
    store caches): an execution may prepare it once — the statement cache of the seam (the
    asyncpg fast path compiles such statements once per dialect and sends them on the
    driver). Statements built per call are left to SQLAlchemy's own compiled cache."""
    key = id(statement)
    _KEPT[key] = weakref.ref(statement, lambda _ref: _KEPT.pop(key, None))
    return statement


def is_kept(statement: Any) -> bool:
    """Whether ``statement`` was marked with :func:`kept` (and is still alive)."""
    ref = _KEPT.get(id(statement))
    return ref is not None and ref() is statement


class StatementRunner(Protocol):
    """Runs statements: what :class:`Executor` and :class:`Execution` have in common."""

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect of the database the statements run on."""
        ...

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        """The rows of ``statement``, read by position (a list of parameter sets runs it
        once per set: ``INSERT … RETURNING`` of many rows)."""
        ...

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        """The rows of ``statement``, read by column name."""
        ...

    async def execute(self, statement: Executable, params: Params = None) -> int:
        """Run ``statement`` (``executemany`` for a list of parameter sets); the number of
        rows it matched (``-1`` when the driver does not say, e.g. for ``executemany``)."""
        ...


class Executor(StatementRunner, Protocol):
    """Runs statements on one connection, in whatever transaction it is in."""


class UnitTransaction(Protocol):
    """One transaction on one pooled connection, held by a unit of work.

    Nothing is checked out until the first statement. The library's stores run on
    :meth:`executor`; an ORM session joins the same transaction through :meth:`connection` (or
    :meth:`bound_connection`, without I/O, once the transaction has begun). After
    :meth:`commit` / :meth:`rollback` the next statement begins the next transaction on the
    same connection; :meth:`close` gives the connection back. Once the connection is lost
    mid-transaction, every further statement and :meth:`commit` raise ``ConnectionLostError``
    (never a fresh transaction on another connection: that would commit half the work);
    :meth:`rollback` is then a no-op.
    """

    async def executor(self) -> Executor:
        """The executor of the transaction (begun if it was not)."""
        ...

    async def connection(self) -> AsyncConnection:
        """A SQLAlchemy connection in the transaction (begun if it was not)."""
        ...

    def bound_connection(self) -> AsyncConnection | None:
        """The SQLAlchemy connection in the transaction when it has begun (``None`` before),
        made without I/O: what an ORM session created now must be bound to."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def close(self) -> None:
        """Give the connection back (after a commit or a rollback)."""
        ...

    async def discard(self) -> None:
        """Never hand the connection out again (it failed: its state is unknown)."""
        ...


class Pin(Protocol):
    """A connection a task holds for a loop of single statements (see
    :meth:`Execution.pinned`), lendable to other tasks one at a time."""

    @property
    def lost(self) -> bool:
        """Whether the held connection is gone: statements meanwhile use pooled connections;
        leave the block and pin again to hold a new one."""
        ...

    def borrow(self) -> AbstractAsyncContextManager[None]:
        """Run the borrowing task's own statements on the held connection for the block."""
        ...


class Execution(StatementRunner, Protocol):
    """How operations outside a unit of work reach one engine's connections."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def dialect(self) -> Dialect: ...

    #: Whether a single statement runs without ``BEGIN``/``COMMIT`` (autocommit).
    autocommit: bool

    # fetch / fetch_mappings / execute: one statement that is atomic on its own, run outside
    # any transaction of the caller's (on the task's pinned connection, if any).

    def in_transaction(self, connection: AsyncConnection) -> Executor:
        """The executor of ``connection`` (of this engine) inside a transaction SQLAlchemy
        began on it: a unit of work's transaction, shared with an ORM session joined to it."""
        ...

    def open_transaction(self) -> UnitTransaction:
        """A unit of work's transaction (nothing checked out until its first statement)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """A short transaction of its own: committed when the block ends, rolled back if it
        raises."""
        ...

    def pinned(self) -> AbstractAsyncContextManager[Pin]:
        """Hold one connection for the block: this task's single statements (:meth:`fetch`,
        :meth:`execute`) run on it instead of a pool checkout each. Tasks created inside the
        block inherit the pin; concurrent ones share it through :meth:`Pin.borrow` or leave
        it with :meth:`unpinned`."""
        ...

    def unpinned(self) -> AbstractContextManager[None]:
        """Inside a pinned block: use pool connections again for the block (a concurrent
        task that inherited the pin)."""
        ...
