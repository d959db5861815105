"""``DurableQueue``: claim, lease, fence, retry and dead-letter rows of any queue table.

One primitive for the outbox relay, background jobs, scheduled commands and saga recovery
(ARCHITECTURE §5). The table needs the columns of :func:`~.columns.queue_columns`.

- :meth:`DurableQueue.claim` takes up to ``n`` due rows in one statement and leases them for
  ``lease_seconds`` under a fresh fencing token. A row is *due* when it is pending, its
  ``available_at`` has passed and it is not leased (or its lease expired: a crashed worker's
  rows come back by the same query).
- Every terminal write (:meth:`ack`, :meth:`nack`, :meth:`release`, :meth:`dead_letter`,
  :meth:`heartbeat`) checks the token; a row whose lease was taken over is reported in
  :attr:`Outcome.lost` (``outcome.raise_if_lost()`` turns that into ``LeaseLostError``).
- :meth:`nack` counts the attempt and schedules the retry with :class:`~.backoff.Backoff`;
  after ``max_attempts`` the row is dead (:meth:`dead_letters`, :meth:`requeue`).
- With ``key_column=`` only the oldest unfinished row of each key is claimable, so rows of one
  key are processed in ``id`` order even by many concurrent workers.

Writes run in the caller's unit of work (``uow=`` or ambient) when there is one — a job can
complete in the same transaction as its effects — and otherwise in a short transaction of their
own. A claim should run in its own transaction so that the lease is visible at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import types
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnClause, UnaryExpression
from sqlalchemy.util.concurrency import greenlet_spawn

from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConfigurationError, CQRSDDDError, LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.core.session import SessionSource, StoreBind
from cqrs_ddd_persistence_sqlalchemy.core.unit_of_work import current_uow
from cqrs_ddd_persistence_sqlalchemy.errors import translate, translating
from cqrs_ddd_persistence_sqlalchemy.queue import postgres as _postgres
from cqrs_ddd_persistence_sqlalchemy.queue import sqlite as _sqlite
from cqrs_ddd_persistence_sqlalchemy.queue.backoff import Backoff
from cqrs_ddd_persistence_sqlalchemy.queue.columns import DEAD, DONE, PENDING, PENDING_SQL
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = ["Claim", "DurableQueue", "Outcome", "Pin", "QueueStats"]

logger = logging.getLogger(__name__)

_REQUIRED = ("id", "status", "available_at", "locked_until", "lease_token", "attempts",
             "last_error", "created_at", "finished_at")  # fmt: skip
_NOW = bindparam("q_now", type_=UTCDateTime())
_UNKNOWN: Any = object()
_DIALECTS: dict[str, ModuleType] = {"postgresql": _postgres, "sqlite": _sqlite}

Executor = AsyncConnection | AsyncSession

# The connection a worker pinned with ``DurableQueue.pinned()`` (per task), by engine.
_PINNED: ContextVar[tuple[AsyncEngine, AsyncConnection] | None] = ContextVar(
    "cqrs_ddd_queue_pinned", default=None
)


def _dialect_module(name: str) -> ModuleType:
    module = _DIALECTS.get(name)
    if module is None:
        raise ConfigurationError(f"the durable queue does not support dialect {name!r}")
    return module


class _Held:
    """A pooled connection lent to queue statements: the pool's proxy and its asyncpg
    connection, and the :class:`_Lender` generation (engine disposals) it was taken in."""

    __slots__ = ("driver", "fairy", "generation")

    def __init__(self, fairy: PoolProxiedConnection, generation: int) -> None:
        self.fairy = fairy
        self.driver: Any = fairy.driver_connection
        self.generation = generation


class _Lender:
    """One engine's pooled connections for one-statement queue operations (asyncpg, outside a
    unit of work and a pin), given back to the pool at the end of the event-loop step
    rather than after every statement.

    A task running statements back to back (a claim, then one fenced settle per job) runs
    them on one connection, as a hand-written worker holding its connection does, instead of
    paying a pool checkout and checkin per statement (two greenlet switches and the pool's
    events: about as much client CPU as the statement itself). Nothing is held longer than
    that: the step that parked a connection has already scheduled the flush, a callback that
    runs at the next iteration of the event loop and checks in every connection no statement
    took again — i.e. as soon as the task awaits anything but its own statement. The check-in
    runs right in that callback (a pool check-in does no I/O); only closing a connection
    continues in a task. A connection the driver failed on (no server error code) is never
    lent again but invalidated, and ``engine.dispose()`` closes parked ones at once.
    """

    __slots__ = ("closing", "flush_due", "generation", "idle", "loop", "stale")

    def __init__(self) -> None:
        self.idle: list[_Held] = []
        self.stale: list[_Held] = []
        self.flush_due = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0
        self.closing: set[asyncio.Task[Any]] = set()

    def take(self) -> _Held | None:
        """A parked connection still good to use, or ``None``."""
        idle = self.idle
        if not idle:
            return None
        if self.loop is not asyncio.get_running_loop():
            # Parked under another event loop (which stopped before its flush): unusable
            # here, and closing it needs that loop. Let the pool's own clean-up have it.
            self.idle = []
            return None
        while idle:
            held = idle.pop()
            if held.generation == self.generation and not held.driver.is_closed():
                return held
            self.discard(held)  # the server closed it, or the engine was disposed meanwhile
        return None

    async def checkout(self, engine: Engine) -> _Held:
        """A connection from the pool (its checkout events run as usual)."""
        return await greenlet_spawn(self._checkout, engine)

    def _checkout(self, engine: Engine) -> _Held:
        return _Held(engine.raw_connection(), self.generation)

    def park(self, held: _Held) -> None:
        """``held`` is free again: lend it until the end of this loop step."""
        self.idle.append(held)
        self._schedule_flush()

    def discard(self, held: _Held) -> None:
        """Never lend ``held`` again: it is invalidated (closed) at the flush."""
        held.generation = -1
        self.stale.append(held)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        if not self.flush_due or self.loop is not loop:
            self.loop = loop
            self.flush_due = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        if not self.idle and not self.stale:
            return  # the common case: every parked connection was taken again
        items = self.idle + self.stale
        self.idle = []
        self.stale = []
        # Driven by hand: without I/O (a check-in) it is over after this first step, even if
        # the loop stops right after (``asyncio.run()`` ending); a task would not start then.
        work = greenlet_spawn(_give_back, items, self.generation)
        try:
            awaiting = work.send(None)
        except StopIteration:
            return
        except Exception:  # pragma: no cover - _give_back handles its own errors
            logger.warning("could not return queue connections to the pool", exc_info=True)
            return
        # Closing an invalidated connection waits for the server: finish in a task.
        task = asyncio.get_running_loop().create_task(_resume(work, awaiting))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    def on_dispose(self, _engine: Engine) -> None:
        """``engine_disposed`` (in the greenlet of ``AsyncEngine.dispose()``): close parked
        connections now; ones still running a statement are closed when they come back."""
        self.generation += 1
        items = self.idle + self.stale
        self.idle = []
        self.stale = []
        _give_back(items, self.generation)


@types.coroutine
def _resume(work: Coroutine[Any, Any, Any], awaiting: Any) -> Generator[Any, Any, Any]:
    """The rest of ``work``, whose first step was driven by hand and yielded ``awaiting``."""
    yield awaiting  # the task waits for what ``work`` waits for, then resumes it
    return (yield from work)


def _give_back(items: Sequence[_Held], generation: int) -> None:
    """Check connections in (inside a greenlet), invalidating stale ones."""
    for held in items:
        fairy = held.fairy
        if fairy.dbapi_connection is None:
            continue  # invalidated already, which returned it to the pool
        try:
            if held.generation == generation:
                fairy.close()
            else:
                fairy.invalidate()
        except Exception:  # the pool replaces a connection it could not take back
            logger.warning("could not return a queue connection to the pool", exc_info=True)


_LENDERS: WeakKeyDictionary[Engine, _Lender] = WeakKeyDictionary()


def _lender_for(engine: Engine) -> _Lender:
    lender = _LENDERS.get(engine)
    if lender is None:
        lender = _LENDERS[engine] = _Lender()
        event.listen(engine, "engine_disposed", lender.on_dispose)
    return lender


class Pin:
    """The connection a ``DurableQueue.pinned()`` block holds, lendable to other tasks.

    ``async with pin.borrow():`` runs the borrowing task's own-transaction queue operations on
    the held connection, one borrower at a time (the pinning task borrows too when others
    may). Once the block has ended, a borrower gets pool connections instead.
    """

    def __init__(self, engine: AsyncEngine, conn: AsyncConnection) -> None:
        self.value: tuple[AsyncEngine, AsyncConnection] | None = (engine, conn)
        self._lock = asyncio.Lock()

    def borrow(self) -> AbstractAsyncContextManager[None]:
        """Hold the connection for the block (waiting for the current borrower, if any)."""
        return _Borrow(self)

    async def close(self) -> None:
        # Wait for a borrower still using the connection before it goes back to the pool.
        async with self._lock:
            self.value = None


class _Borrow:
    # A class, not an ``@asynccontextmanager``: an async generator per settled job costs
    # more (asyncio's first-iteration hook) than the lock itself.
    __slots__ = ("_pin", "_token")

    def __init__(self, pin: Pin) -> None:
        self._pin = pin
        self._token: Token[tuple[AsyncEngine, AsyncConnection] | None] | None = None

    async def __aenter__(self) -> None:
        await self._pin._lock.acquire()
        self._token = _PINNED.set(self._pin.value)

    async def __aexit__(self, *exc: object) -> None:
        if self._token is not None:
            _PINNED.reset(self._token)
        self._pin._lock.release()


@dataclass(frozen=True, slots=True)
class Claim:
    """One leased row. ``token`` is the fencing token every terminal write must present
    (``None`` only for an administrative settle of a row that is not leased)."""

    id: int
    token: str | None
    attempts: int
    locked_until: datetime
    values: Mapping[str, Any] = field(repr=False)

    def __getitem__(self, column: str) -> Any:
        return self.values[column]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a terminal write did, by row id."""

    done: tuple[int, ...] = ()
    retried: tuple[int, ...] = ()
    dead: tuple[int, ...] = ()
    released: tuple[int, ...] = ()
    extended: tuple[int, ...] = ()
    #: Rows whose lease was taken over by another worker: nothing was written for them.
    lost: tuple[int, ...] = ()

    def raise_if_lost(self) -> None:
        """Raise :class:`~cqrs_ddd_core.errors.LeaseLostError` if any row was lost."""
        if self.lost:
            error = LeaseLostError(f"lease lost for rows {sorted(self.lost)}")
            error.ids = self.lost  # type: ignore[attr-defined]
            raise error


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts by state and the lag of the oldest due row (``0.0`` when nothing is due)."""

    pending: int
    leased: int
    scheduled: int
    done: int
    dead: int
    oldest_due_at: datetime | None
    lag_seconds: float


class DurableQueue:
    """Claim/ack/nack/heartbeat over one queue table (see module docstring).

    Args:
        table: a table with :func:`~.columns.queue_columns`.
        bind: engine, session factory, session or unit of work (see ``SessionSource``).
        lease_seconds: how long a claim is exclusive; extend long work with :meth:`heartbeat`.
        max_attempts: failed attempts after which :meth:`nack` dead-letters a row.
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
                await queue.nack([claim], error=repr(exc))
            else:
                (await queue.ack([claim])).raise_if_lost()
    """

    def __init__(
        self,
        table: Table,
        bind: StoreBind = None,
        *,
        lease_seconds: float = 30.0,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        key_column: str | None = None,
        order_by: Sequence[ColumnElement[Any]] | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        missing = [c for c in _REQUIRED if c not in table.c]
        if key_column is not None and key_column not in table.c:
            missing.append(key_column)
        if missing:
            raise ConfigurationError(
                f"table {table.name!r} is not a queue table: missing columns {missing} "
                "(build it with queue_columns())"
            )
        if lease_seconds <= 0 or max_attempts < 1:
            raise ConfigurationError("lease_seconds must be > 0 and max_attempts >= 1")
        self.table = table
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.key_column = key_column
        self.order_by: tuple[ColumnElement[Any], ...] = tuple(order_by or (table.c.id,))
        self._sort_keys = _sort_keys(table, self.order_by)
        self._only_checked: set[tuple[str, ...]] = set()
        self.clock = clock
        self._rng = rng or random.Random()
        self._engine = bind if isinstance(bind, AsyncEngine) else None
        # A queue built on a bare session (the seed's ``SQLAlchemyOutboxStorage(session)``)
        # claims and settles on that session's engine, in transactions of its own: a lease or
        # an ack left in a caller's uncommitted session would be invisible (messages re-sent
        # forever). Only enqueueing joins the session.
        self._session_bind = bind if isinstance(bind, AsyncSession) else None
        if self._session_bind is not None and isinstance(self._session_bind.bind, AsyncEngine):
            self._engine = self._session_bind.bind
        self._engine_dialect = _dialect_module(self._engine.dialect.name) if self._engine else None
        self._autocommits = bool(
            getattr(self._engine_dialect, "AUTOCOMMIT_SINGLE_STATEMENTS", False)
        )
        self._source = SessionSource(bind)
        self._statements: dict[tuple[str, Hashable], Any] = {}
        # Statements the queue keeps alive run straight on asyncpg outside a unit of work.
        self._driver: Any = (
            self._engine_dialect.driver_cache() if self._engine_dialect is not None else None
        )
        # Their driver forms by name (``None``: the statement needs SQLAlchemy), and the
        # engine's lent connections they run on when no pin applies.
        self._calls: dict[Hashable, Any] = {}
        self._lender: _Lender | None = None
        if (
            self._engine is not None
            and self._driver is not None
            and self._autocommits
            and self._engine.dialect.driver == "asyncpg"
            and not self._engine.get_execution_options().get("schema_translate_map")
        ):
            self._lender = _lender_for(self._engine.sync_engine)

    # -- plumbing --------------------------------------------------------------------------
    @property
    def engine(self) -> AsyncEngine | None:
        """The engine the queue was built with, if any (LISTEN needs one)."""
        return self._engine

    @property
    def dialect(self) -> ModuleType | None:
        """The dialect module (``queue.postgres`` / ``queue.sqlite``) of :attr:`engine`."""
        return self._engine_dialect

    @asynccontextmanager
    async def connection(
        self, uow: Any = None, *, single_statement: bool = False, join_session: bool = False
    ) -> AsyncIterator[Executor]:
        """The executor of one operation: the joined unit of work, or a transaction of our own.

        With an engine bind and no unit of work this is a bare connection (the hot paths skip
        the ORM session). ``single_statement=True`` lets a dialect that supports it run the
        operation in autocommit mode: one statement is atomic on its own, and PostgreSQL then
        needs no ``BEGIN``/``COMMIT`` round trips. ``join_session=True`` (writes that belong
        to the caller's transaction) uses the bare session the queue was built with, if any.
        """
        joined = self._source.resolve_uow(uow)
        pinned = _PINNED.get()
        if joined is None and pinned is not None and pinned[0] is self._engine:
            conn = pinned[1]
            with translating():
                if self._autocommits:
                    if single_statement:
                        yield conn
                        return
                else:
                    async with conn.begin():
                        yield conn
                    return
        if joined is None and join_session and self._session_bind is not None:
            with translating():
                yield self._session_bind
            return
        if joined is None and self._engine is not None:
            with translating():
                if single_statement and self._autocommits:
                    async with self._engine.connect() as conn:
                        yield await conn.execution_options(isolation_level="AUTOCOMMIT")
                else:
                    async with self._engine.begin() as conn:
                        yield conn
            return
        async with self._source.session(joined) as session:
            yield session

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[Pin | None]:
        """Run this task's own-transaction operations on one connection held for the block.

        A worker loop (``OutboxRelay.run`` does this) saves a pool checkout per claim and per
        ack. Operations inside a unit of work are unaffected; tasks created inside the block
        inherit the pin, so concurrent helpers wrap themselves in :meth:`unpinned` — or, to
        share the connection one at a time, ``async with pin.borrow():`` with the
        :class:`Pin` the block yields (``None`` when the queue has no engine). If the
        connection breaks, the operation raises ``ConnectionLostError``; leave the block and
        pin again.
        """
        if self._engine is None:
            yield None
            return
        with translating():
            async with self._engine.connect() as conn:
                if self._autocommits:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                pin = Pin(self._engine, conn)
                token = _PINNED.set(pin.value)
                try:
                    yield pin
                finally:
                    _PINNED.reset(token)
                    await pin.close()

    @staticmethod
    @contextmanager
    def unpinned() -> Iterator[None]:
        """Inside a task that inherited a pin: use pool checkouts again (concurrent use)."""
        token = _PINNED.set(None)
        try:
            yield
        finally:
            _PINNED.reset(token)

    @staticmethod
    def dialect_of(executor: Executor) -> ModuleType:
        """The dialect module (``queue.postgres`` / ``queue.sqlite``) for an executor."""
        name = (
            executor.dialect.name
            if isinstance(executor, AsyncConnection)
            else executor.get_bind().dialect.name
        )
        return _dialect_module(name)

    def _cached(self, dialect: ModuleType, name: Hashable, build: Callable[[], Any]) -> Any:
        # Statements are built once per dialect with bound parameters: building and
        # cache-keying a claim statement costs more than executing it on a warm connection.
        key = (dialect.__name__, name)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt

    async def run(
        self,
        name: Hashable,
        build: Callable[[ModuleType], Any],
        params: Mapping[str, Any],
        *,
        uow: Any = None,
    ) -> Sequence[Mapping[Any, Any]]:
        """Run one statement that is atomic on its own; return its rows as mappings.

        ``build(dialect_module)`` makes the statement (with bound parameters only); it is
        built once per dialect and kept under ``name``, so SQLAlchemy's compiled cache hits and,
        outside a unit of work on asyncpg, the statement runs straight on the driver connection
        (see ``postgres/driver.py``) in autocommit: one round trip, none of SQLAlchemy's
        per-execution work. In a unit of work it joins its transaction, as every write does.

        Example::

            rows = await queue.run(
                "touch",
                lambda d: update(t).where(t.c.id == bindparam("id")).returning(t.c.id),
                {"id": 7},
            )
        """
        if uow is None and self._lender is not None and current_uow() is None:
            call = self._calls.get(name, _UNKNOWN)
            if call is _UNKNOWN:
                dialect_module: ModuleType = self._engine_dialect  # type: ignore[assignment]
                stmt = self._cached(dialect_module, name, lambda: build(dialect_module))
                engine: AsyncEngine = self._engine  # type: ignore[assignment]
                call = self._calls[name] = self._driver.compiled(stmt, engine.dialect)
            if call is not None:
                try:
                    pinned = _PINNED.get()
                    if pinned is None or pinned[0] is not self._engine:
                        return await self._fetch_lent(call, params)
                    bare = pinned[1]
                    sync = bare.sync_connection
                    if sync is not None and not sync.invalidated:
                        records: list[Any] = await call.fetch(bare, params)
                        return records
                    # else: SQLAlchemy's path below reconnects the pin (or says why not)
                except CQRSDDDError:
                    raise
                except Exception as exc:
                    error = translate(exc)
                    if error is None:
                        raise
                    raise error from exc
        if self._engine is not None and self._autocommits:
            dialect: ModuleType = self._engine_dialect  # type: ignore[assignment]
            if self._source.resolve_uow(uow) is None:
                stmt = self._cached(dialect, name, lambda: build(dialect))
                pinned = _PINNED.get()
                with translating():
                    if pinned is not None and pinned[0] is self._engine:
                        return await self._run_bare(pinned[1], stmt, params)
                    if self._driver is not None:
                        pooled = await self._driver.fetch_pooled(self._engine, stmt, params)
                        if pooled is not None:
                            return pooled  # type: ignore[no-any-return]
                    async with self._engine.connect() as bare:
                        conn = await bare.execution_options(isolation_level="AUTOCOMMIT")
                        return (await conn.execute(stmt, params)).mappings().all()
        async with self.connection(uow, single_statement=True) as executor:
            dialect = self.dialect_of(executor)
            stmt = self._cached(dialect, name, lambda: build(dialect))
            return (await executor.execute(stmt, params)).mappings().all()

    async def _fetch_lent(self, call: Any, params: Mapping[str, Any]) -> list[Any]:
        """Rows of a driver statement on a lent connection. Errors are the driver's."""
        args = call.args(params)
        lender: _Lender = self._lender  # type: ignore[assignment]
        held = lender.take()
        if held is None:
            engine: AsyncEngine = self._engine  # type: ignore[assignment]
            held = await lender.checkout(engine.sync_engine)
        try:
            records: list[Any] = await held.driver.fetch(call.sql, *args)
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an error the server reported (lost connection, cancellation mid-flight):
                # the connection's state is unknown, never lend it again.
                lender.discard(held)
            else:
                lender.park(held)
            raise
        lender.park(held)
        return records

    async def _run_bare(
        self, bare: AsyncConnection, stmt: Any, params: Mapping[str, Any]
    ) -> Sequence[Mapping[Any, Any]]:
        if self._driver is not None:
            records = await self._driver.fetch(bare, stmt, params)
            if records is not None:
                return records  # type: ignore[no-any-return]
        sync = bare.sync_connection
        if sync is None or sync.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            bare = await bare.execution_options(isolation_level="AUTOCOMMIT")
        return (await bare.execute(stmt, params)).mappings().all()

    def due_condition(self, now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
        """Pending, available, and not leased (or lease expired)."""
        t = self.table
        return and_(
            t.c.status == PENDING_SQL,
            t.c.available_at <= now,
            or_(t.c.locked_until.is_(None), t.c.locked_until <= now),
        )

    # -- enqueueing -------------------------------------------------------------------------
    async def enqueue(
        self,
        rows: Sequence[Mapping[Any, Any]],
        *,
        ignore_conflicts_on: Sequence[str] | None = None,
        uow: Any = None,
    ) -> None:
        """Insert rows (pending, due now unless they carry ``available_at``) in one
        ``executemany``. With ``ignore_conflicts_on=("message_id",)`` a row whose unique key
        already exists is skipped (idempotent enqueue)."""
        if not rows:
            return
        now = self.clock()
        params = [{"available_at": now, "created_at": now, **row} for row in rows]
        async with self.connection(uow, join_session=True) as executor:
            if ignore_conflicts_on:
                stmt: Any = self.dialect_of(executor).insert_ignore(self.table, ignore_conflicts_on)
            else:
                stmt = insert(self.table)
            await executor.execute(stmt, params)

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
            async with self.connection(uow, single_statement=True) as executor:
                dialect = self.dialect_of(executor)
                stmt = self._claim_statement(dialect, where, keys)
                rows = (await executor.execute(stmt, params)).mappings().all()
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
        self._sort(claims)
        return claims

    def _claim_statement(
        self,
        dialect: ModuleType,
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

    def _sort(self, claims: list[Claim]) -> None:
        # RETURNING has no order: re-apply the claim order's leading plain columns (then
        # ``id``), one stable sort per key from the last to the first.
        if len(claims) < 2:
            return
        claims.sort(key=_claim_id)
        for key, descending in self._sort_keys:
            claims.sort(key=key, reverse=descending)

    # -- terminal writes (fenced) -----------------------------------------------------------
    async def ack(self, claims: Sequence[Claim], *, uow: Any = None) -> Outcome:
        """Mark claimed rows done (``finished_at`` = now). Rows whose lease was lost are not
        touched and are reported in ``Outcome.lost``."""
        done = await self._fenced(
            "ack",
            claims,
            {"status": DONE, "finished_at": _NOW, "lease_token": None, "locked_until": None},
            {"q_now": self.clock()},
            uow,
        )
        return Outcome(done=done, lost=_lost(claims, done))

    async def release(self, claims: Sequence[Claim], *, uow: Any = None) -> Outcome:
        """Give claimed rows back untouched (no attempt counted), due at once (shutdown)."""
        released = await self._fenced(
            "release", claims, {"lease_token": None, "locked_until": None}, {}, uow
        )
        return Outcome(released=released, lost=_lost(claims, released))

    async def heartbeat(
        self, claims: Sequence[Claim], *, lease_seconds: float | None = None, uow: Any = None
    ) -> Outcome:
        """Extend the lease of claimed rows (long-running work)."""
        span = timedelta(seconds=lease_seconds) if lease_seconds else self.lease
        extended = await self._fenced(
            "heartbeat",
            claims,
            {"locked_until": bindparam("q_until", type_=UTCDateTime())},
            {"q_until": self.clock() + span},
            uow,
        )
        return Outcome(extended=extended, lost=_lost(claims, extended))

    async def dead_letter(self, claims: Sequence[Claim], *, error: str, uow: Any = None) -> Outcome:
        """Dead-letter claimed rows now, whatever their attempt count (e.g. unknown type)."""
        dead = await self._fenced(
            "dead_letter",
            claims,
            {
                "status": DEAD,
                "finished_at": _NOW,
                "last_error": bindparam("q_error", type_=String()),
                "lease_token": None,
                "locked_until": None,
                "attempts": self.table.c.attempts + 1,
            },
            {"q_now": self.clock(), "q_error": error},
            uow,
        )
        return Outcome(dead=dead, lost=_lost(claims, dead))

    async def nack(
        self,
        claims: Sequence[Claim],
        *,
        error: str,
        delay: float | None = None,
        uow: Any = None,
    ) -> Outcome:
        """Count a failed attempt: retry after the backoff (or ``delay`` seconds), or
        dead-letter the row once it has failed ``max_attempts`` times."""
        t = self.table
        now = self.clock()
        retried: list[int] = []
        dead: list[int] = []
        async with self.connection(uow) as executor:
            for claim in claims:
                attempts = claim.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_error": error,
                    "lease_token": None,
                    "locked_until": None,
                }
                if attempts >= self.max_attempts:
                    values.update(status=DEAD, finished_at=now)
                else:
                    wait = (
                        delay if delay is not None else self.backoff.delay(attempts, rng=self._rng)
                    )
                    values["available_at"] = now + timedelta(seconds=wait)
                stmt = (
                    update(t)
                    .where(t.c.id == claim.id, t.c.lease_token == claim.token)
                    .values(**values)
                    .returning(t.c.id)
                )
                if (await executor.execute(stmt)).first() is not None:
                    (dead if attempts >= self.max_attempts else retried).append(claim.id)
        settled = (*retried, *dead)
        return Outcome(retried=tuple(retried), dead=tuple(dead), lost=_lost(claims, settled))

    async def _fenced(
        self,
        name: str,
        claims: Sequence[Claim],
        values: Mapping[str, Any],
        params: Mapping[str, Any],
        uow: Any,
    ) -> tuple[int, ...]:
        if not claims:
            return ()
        t = self.table
        by_token: dict[str | None, list[int]] = {}
        for claim in claims:
            by_token.setdefault(claim.token, []).append(claim.id)

        def build(dialect: ModuleType) -> Any:
            # ``IS NOT DISTINCT FROM``: a row taken over without a lease (token NULL) by an
            # administrative settle still matches; any other token never does.
            return (
                update(t)
                .where(
                    dialect.one_of(t.c.id, "q_ids"),
                    t.c.lease_token.is_not_distinct_from(bindparam("q_fence", type_=String())),
                )
                .values(**values)
                .returning(t.c.id)
            )

        if len(by_token) == 1:
            # The common case (one claim's batch): one statement, atomic on its own.
            ((token, ids),) = by_token.items()
            rows = await self.run(name, build, {**params, "q_ids": ids, "q_fence": token}, uow=uow)
            return tuple(sorted(row["id"] for row in rows))
        written: list[int] = []
        async with self.connection(uow) as executor:
            dialect = self.dialect_of(executor)
            stmt = self._cached(dialect, name, lambda: build(dialect))
            for token, ids in by_token.items():
                result = await executor.execute(stmt, {**params, "q_ids": ids, "q_fence": token})
                written.extend(result.scalars().all())
        return tuple(sorted(written))

    # -- administration ----------------------------------------------------------------------
    async def dead_letters(
        self,
        limit: int = 100,
        *,
        where: ColumnElement[bool] | None = None,
        uow: Any = None,
    ) -> list[Mapping[str, Any]]:
        """Dead rows, oldest first."""
        t = self.table
        stmt = select(t).where(t.c.status == DEAD)
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.order_by(t.c.id).limit(limit)
        async with self.connection(uow) as executor:
            return [dict(r) for r in (await executor.execute(stmt)).mappings().all()]

    async def requeue(
        self,
        ids: Iterable[int] | None = None,
        *,
        where: ColumnElement[bool] | None = None,
        reset_attempts: bool = True,
        uow: Any = None,
    ) -> int:
        """Bring dead rows (all, or ``ids`` / ``where``) back to pending, due now."""
        t = self.table
        values: dict[str, Any] = {
            "status": PENDING,
            "available_at": self.clock(),
            "finished_at": None,
            "lease_token": None,
            "locked_until": None,
        }
        if reset_attempts:
            values["attempts"] = 0
        stmt = update(t).where(t.c.status == DEAD).values(**values).returning(t.c.id)
        if ids is not None:
            stmt = stmt.where(t.c.id.in_(list(ids)))
        if where is not None:
            stmt = stmt.where(where)
        async with self.connection(uow) as executor:
            return len((await executor.execute(stmt)).all())

    async def purge(
        self,
        older_than: timedelta,
        *,
        statuses: Sequence[str] = (DONE,),
        uow: Any = None,
    ) -> int:
        """Delete finished rows (default: done) finished more than ``older_than`` ago."""
        if PENDING in statuses:
            raise ConfigurationError("purge never deletes pending rows")
        t = self.table
        cutoff = self.clock() - older_than
        stmt = (
            delete(t)
            .where(t.c.status.in_(list(statuses)), t.c.finished_at < cutoff)
            .returning(t.c.id)
        )
        async with self.connection(uow) as executor:
            return len((await executor.execute(stmt)).all())

    async def stats(self, *, uow: Any = None) -> QueueStats:
        """Counts per state and the lag of the oldest due, unclaimed row."""
        t = self.table
        now = self.clock()
        leased = and_(t.c.lease_token.is_not(None), t.c.locked_until > now)
        counts = select(t.c.status, func.count()).group_by(t.c.status)
        leased_q = select(func.count()).where(t.c.status == PENDING_SQL, leased)
        scheduled_q = select(func.count()).where(
            t.c.status == PENDING_SQL, t.c.available_at > now, ~leased
        )
        oldest_q = select(func.min(t.c.available_at)).where(self.due_condition(now))
        async with self.connection(uow) as executor:
            by_status: dict[str, int] = {
                row[0]: int(row[1]) for row in (await executor.execute(counts)).all()
            }
            n_leased = int((await executor.execute(leased_q)).scalar_one())
            n_scheduled = int((await executor.execute(scheduled_q)).scalar_one())
            oldest: datetime | None = (await executor.execute(oldest_q)).scalar_one()
        pending = by_status.get(PENDING, 0)
        lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return QueueStats(
            pending=pending,
            leased=n_leased,
            scheduled=n_scheduled,
            done=by_status.get(DONE, 0),
            dead=by_status.get(DEAD, 0),
            oldest_due_at=oldest,
            lag_seconds=lag,
        )


def _claim_id(claim: Claim) -> int:
    return claim.id


def _sort_keys(
    table: Table, order_by: Sequence[ColumnElement[Any]]
) -> tuple[tuple[Callable[[Claim], Any], bool], ...]:
    """Sort keys (last first) for the leading plain columns of ``order_by``, up to ``id``.

    ``col`` / ``col.asc()`` / ``col.desc()`` of ``table`` qualify; the first other expression
    ends the list (claims are then ordered by the columns before it, then ``id``). A nullable
    column sorts NULLs as PostgreSQL does by default: last ascending, first descending.
    """
    keys: list[tuple[Callable[[Claim], Any], bool]] = []
    for item in order_by:
        element: Any = item
        descending = False
        if isinstance(item, UnaryExpression) and item.modifier in (
            operators.asc_op,
            operators.desc_op,
        ):
            descending = item.modifier is operators.desc_op
            element = item.element
        if not isinstance(element, ColumnClause):
            break
        name: str = element.name
        if table.c.get(name) is not element:
            break
        if name == "id":
            # Unique: later keys never matter. Claims are sorted by ``id`` ascending first.
            if descending:
                keys.append((_claim_id, True))
            break
        nullable = bool(getattr(element, "nullable", True))
        keys.append((_column_key(name, nullable), descending))
    return tuple(reversed(keys))


def _column_key(name: str, nullable: bool) -> Callable[[Claim], Any]:
    if nullable:
        return lambda claim: (claim.values[name] is None, claim.values[name])
    return lambda claim: claim.values[name]


def _lost(claims: Sequence[Claim], written: Sequence[int]) -> tuple[int, ...]:
    ok = set(written)
    return tuple(sorted(c.id for c in claims if c.id not in ok))
