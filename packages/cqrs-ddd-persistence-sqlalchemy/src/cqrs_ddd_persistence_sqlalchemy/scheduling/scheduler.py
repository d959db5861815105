"""``SQLAlchemyCommandScheduler``: commands due at a time, dispatched once, on the durable queue.

A scheduled command is a row of ``cqrs_scheduled_commands`` (a ``queue_columns`` table) whose
``available_at`` is its due time. :class:`SchedulerWorker` claims due rows through
:class:`~..queue.DurableQueue` (``SKIP LOCKED`` on PostgreSQL), so any number of workers
dispatch each command once; a failing dispatch is retried with backoff and dead-lettered after
``max_attempts``; a row whose command type is unknown is dead-lettered alone, the rest of the
batch goes on. Periodic commands (cron or interval) are inserted once per period under the
unique key ``periodic:<name>@<fire time>`` with ``ON CONFLICT DO NOTHING``.

The status (:class:`~cqrs_ddd_advanced_core.scheduling.ScheduledCommandStatus`) is derived from
the queue columns, never stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    update,
)

from cqrs_ddd_advanced_core.jobs import Backoff
from cqrs_ddd_advanced_core.scheduling import (
    PeriodicCommand,
    ScheduledCommand,
    ScheduledCommandStatus,
)
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import ConfigurationError, RetryableError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.queue import (
    DEAD,
    DONE,
    PENDING,
    Claim,
    DurableQueue,
    QueueStats,
)
from cqrs_ddd_persistence_sqlalchemy.tables.scheduled import scheduled_commands_table

__all__ = [
    "SQLAlchemyCommandScheduler",
    "SchedulerWorker",
    "scheduled_commands_table",
]

logger = logging.getLogger(__name__)


#: ``async def dispatch(command) -> None`` — sends the command to its handler.
Dispatcher = Callable[[Any], Awaitable[Any]]


def command_type_of(command: Any) -> str:
    """The stored type name of a command object (``__command_type__`` or the class name)."""
    return str(getattr(type(command), "__command_type__", None) or type(command).__name__)


class SQLAlchemyCommandScheduler:
    """Schedules, cancels and inspects scheduled commands.

    Args:
        bind: engine (fastest), session factory, session or unit of work.
        lease_seconds: how long a claimed command is exclusive while it is dispatched.
        max_attempts: default attempts before a command is dead-lettered.
        backoff: delay between attempts.

    Example::

        scheduler = SQLAlchemyCommandScheduler(engine)
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            await scheduler.schedule(CancelUnpaidOrder(order_id="o-1"),
                                     at=utc_now() + timedelta(hours=1), uow=uow)
            await uow.commit()
    """

    def __init__(
        self,
        bind: Bind = None,
        *,
        session_factory: Bind = None,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be >= 1")
        self.table = scheduled_commands_table
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.queue = DurableQueue(
            self.table,
            bind if bind is not None else session_factory,
            lease_seconds=lease_seconds,
            clock=clock,
        )

    # -- scheduling ------------------------------------------------------------------------
    async def schedule(
        self,
        command: Any,
        *,
        at: datetime | None = None,
        delay: timedelta | None = None,
        command_type: str | None = None,
        key: str | None = None,
        max_attempts: int | None = None,
        uow: Any = None,
    ) -> int:
        """Schedule ``command`` (a pydantic model, or a payload mapping with
        ``command_type=``) for ``at`` (or now + ``delay``, or now); return its id.

        With a ``key`` that is already scheduled, nothing is inserted and the existing id is
        returned. Runs in ``uow``'s transaction when given or ambient.
        """
        if isinstance(command, Mapping):
            if command_type is None:
                raise ConfigurationError("a payload mapping needs command_type=")
            payload = dict(command)
        elif isinstance(command, BaseModel):
            payload = command.model_dump(mode="json")
        else:
            raise ConfigurationError(
                f"cannot schedule {type(command).__name__}: pass a pydantic model or a mapping"
            )
        now = self.clock()
        due = at if at is not None else now + (delay or timedelta(0))
        row = {
            "command_type": command_type or command_type_of(command),
            "payload": payload,
            "key": key,
            "max_attempts": max_attempts or self.max_attempts,
            "available_at": due,
            "created_at": now,
        }
        t = self.table
        async with self.queue.binding.transaction(uow) as executor:
            if key is None:
                inserted = await executor.fetch(insert(t).values(**row).returning(t.c.id))
                return int(inserted[0][0])
            stmt = dialect_for(executor.dialect).insert_ignore(t, ["key"])
            await executor.execute(stmt, [row])
            found = await executor.fetch(select(t.c.id).where(t.c.key == key))
            return int(found[0][0])

    async def fire_periodic(
        self,
        periodic: Sequence[PeriodicCommand],
        *,
        now: datetime | None = None,
        catch_up: timedelta | None = timedelta(hours=1),
        uow: Any = None,
    ) -> None:
        """Insert the current period's command of each periodic schedule (once per period:
        unique key + ``ON CONFLICT DO NOTHING``). A period that started more than
        ``catch_up`` ago is skipped (keep the purge retention longer than ``catch_up``)."""
        now = now or self.clock()
        rows = []
        for item in periodic:
            fire = item.due(now, catch_up=catch_up)
            if fire is not None:
                rows.append(
                    {
                        "command_type": item.command_type,
                        "payload": dict(item.payload),
                        "key": item.key_for(fire),
                        "max_attempts": item.max_attempts,
                        "available_at": fire,
                        "created_at": now,
                    }
                )
        await self.queue.enqueue(rows, ignore_conflicts_on=("key",), uow=uow)

    async def cancel(self, command_id: int | None = None, *, key: str | None = None,
                     uow: Any = None) -> bool:  # fmt: skip
        """Cancel a command that has not been dispatched (and is not being dispatched now)."""
        t = self.table
        if (command_id is None) == (key is None):
            raise ConfigurationError("pass exactly one of command_id or key")
        now = self.clock()
        which = t.c.id == command_id if command_id is not None else t.c.key == key
        stmt = (
            update(t)
            .where(
                which,
                t.c.status == PENDING,
                or_(t.c.lease_token.is_(None), t.c.locked_until <= now),
            )
            .values(
                status=DONE, cancelled_at=now, finished_at=now, lease_token=None, locked_until=None
            )
            .returning(t.c.id)
        )
        async with self.queue.transaction(uow) as executor:
            return bool(await executor.fetch(stmt))

    # -- claiming (used by SchedulerWorker) --------------------------------------------------
    async def claim_due(self, limit: int = 100) -> list[Claim]:
        """Lease up to ``limit`` due commands (in ``id`` order)."""
        return await self.queue.claim(limit)

    async def settle_failure(self, claim: Claim, error: str, *, retry: bool = True) -> bool:
        """Count a failed dispatch; return True if the row is now dead."""
        # The row's own ``max_attempts`` column is the queue's attempt limit for it.
        delay = self.backoff.seconds(claim.attempts + 1)
        outcome = await self.queue.fail([claim], error=error, delay=delay, retry=retry)
        return bool(outcome.dead)

    # -- inspection ------------------------------------------------------------------------
    def status_expression(self, now: datetime | None = None) -> ColumnElement[str]:
        """SQL deriving :class:`ScheduledCommandStatus` from the queue columns."""
        t = self.table
        now = now or self.clock()
        s = ScheduledCommandStatus
        return case(
            (t.c.status == DEAD, s.DEAD.value),
            (and_(t.c.status == DONE, t.c.cancelled_at.is_not(None)), s.CANCELLED.value),
            (t.c.status == DONE, s.DISPATCHED.value),
            (and_(t.c.lease_token.is_not(None), t.c.locked_until > now), s.RUNNING.value),
            else_=s.PENDING.value,
        )

    def _record(self, row: Mapping[Any, Any], status: str) -> ScheduledCommand:
        return ScheduledCommand(
            id=int(row["id"]),
            command_type=str(row["command_type"]),
            payload=dict(row["payload"] or {}),
            due_at=row["available_at"],
            status=ScheduledCommandStatus(status),
            attempts=int(row["attempts"]),
            max_attempts=int(row["max_attempts"]),
            key=row["key"],
            error=row["last_error"],
            created_at=row["created_at"],
        )

    async def get(self, command_id: int, *, uow: Any = None) -> ScheduledCommand | None:
        t = self.table
        stmt = select(t, self.status_expression().label("cmd_status")).where(t.c.id == command_id)
        async with self.queue.transaction(uow) as executor:
            rows = await executor.fetch_mappings(stmt)
        return self._record(rows[0], rows[0]["cmd_status"]) if rows else None

    async def count_by_status(self, *, uow: Any = None) -> dict[ScheduledCommandStatus, int]:
        expr = self.status_expression().label("s")
        async with self.queue.transaction(uow) as executor:
            rows = await executor.fetch(select(expr, func.count()).group_by(expr))
        counts = dict.fromkeys(ScheduledCommandStatus, 0)
        counts.update({ScheduledCommandStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def stats(self, *, uow: Any = None) -> QueueStats:
        """Queue health: counts and the lag of the oldest due command."""
        return await self.queue.stats(uow=uow)

    async def dead_letters(self, limit: int = 100, *, uow: Any = None) -> list[ScheduledCommand]:
        rows = await self.queue.dead_letters(limit, uow=uow)
        return [self._record(r, ScheduledCommandStatus.DEAD) for r in rows]

    async def requeue(self, ids: Iterable[int], *, uow: Any = None) -> int:
        return await self.queue.requeue(list(ids), uow=uow)

    async def purge(
        self, older_than: timedelta, *, include_dead: bool = False, uow: Any = None
    ) -> int:
        """Delete dispatched and cancelled rows (and dead ones with ``include_dead``)."""
        statuses = (DONE, DEAD) if include_dead else (DONE,)
        return await self.queue.purge(older_than, statuses=statuses, uow=uow)


class SchedulerWorker:
    """Fires periodic schedules and dispatches due commands.

    Args:
        scheduler: the command scheduler.
        dispatch: ``async def dispatch(command)``; an exception counts a failed attempt.
        command_types: classes (pydantic models) the stored payloads are turned back into,
            as a list (keyed by ``__command_type__`` or class name) or a ``{name: class}`` map.
            A row whose type is not here is dead-lettered on its own.
        periodic: periodic commands fired once per period.

    Example::

        worker = SchedulerWorker(scheduler, mediator.send, [CancelUnpaidOrder],
                                 periodic=[PeriodicCommand("nightly", "0 2 * * *", "Report")])
        await worker.run()
    """

    def __init__(
        self,
        scheduler: SQLAlchemyCommandScheduler,
        dispatch: Dispatcher,
        command_types: Mapping[str, type[Any]] | Iterable[type[Any]] = (),
        *,
        periodic: Sequence[PeriodicCommand] = (),
        batch_size: int = 100,
        poll_interval: float = 1.0,
        catch_up: timedelta | None = timedelta(hours=1),
    ) -> None:
        self.scheduler = scheduler
        self.dispatch = dispatch
        if isinstance(command_types, Mapping):
            self.command_types: dict[str, type[Any]] = dict(command_types)
        else:
            self.command_types = {
                str(getattr(c, "__command_type__", None) or c.__name__): c for c in command_types
            }
        self.periodic = list(periodic)
        for item in self.periodic:
            item.parsed  # noqa: B018 - parse now: a bad expression fails at start-up
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.catch_up = catch_up
        self._stop = asyncio.Event()

    def _build(self, command_type: str, payload: Mapping[str, Any]) -> Any:
        cls = self.command_types[command_type]
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls.model_validate(dict(payload))
        return cls(**payload)

    async def run_once(self) -> int:
        """Fire periodic schedules, then dispatch one batch; return how many were settled."""
        if self.periodic:
            await self.scheduler.fire_periodic(self.periodic, catch_up=self.catch_up)
        claims = await self.scheduler.claim_due(self.batch_size)
        for claim in claims:
            command_type = str(claim["command_type"])
            if command_type not in self.command_types:
                logger.error("scheduled command %s: unknown type %r", claim.id, command_type)
                await self.scheduler.settle_failure(
                    claim, f"unknown command type {command_type!r}", retry=False
                )
                continue
            try:
                command = self._build(command_type, claim["payload"] or {})
                await self.dispatch(command)
            except Exception as exc:
                logger.warning("scheduled command %s failed", claim.id, exc_info=True)
                await self.scheduler.settle_failure(claim, f"{type(exc).__name__}: {exc}")
                continue
            # Acknowledged one by one: a crash re-dispatches at most the command in flight.
            outcome = await self.scheduler.queue.complete([claim])
            if outcome.lost:
                logger.warning("scheduled command %s: lease lost before ack", claim.id)
        return len(claims)

    async def run(self) -> None:
        """Loop until :meth:`stop`. A transient database error is logged and retried."""
        while not self._stop.is_set():
            try:
                settled = await self.run_once()
            except RetryableError:
                logger.warning("scheduler: database unavailable; retrying", exc_info=True)
                settled = 0
            if settled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_interval)

    def stop(self) -> None:
        self._stop.set()
