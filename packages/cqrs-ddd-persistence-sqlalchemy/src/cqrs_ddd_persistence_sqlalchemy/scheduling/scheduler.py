"""``SQLAlchemyCommandScheduler``: commands due at a time, dispatched once, on the durable queue.

A scheduled command is a row of ``cqrs_scheduled_commands`` (a ``queue_columns`` table) whose
``available_at`` is its due time. :class:`~.worker.SchedulerWorker` claims due rows through
:class:`~..queue.DurableQueue` (``SKIP LOCKED`` on PostgreSQL), so any number of workers
dispatch each command once; a failing dispatch is retried with backoff and dead-lettered after
``max_attempts``; a row whose command type is unknown is dead-lettered alone, the rest of the
batch goes on. Periodic commands (cron or interval) are inserted once per period under the
unique key ``periodic:<name>@<fire time>`` with ``ON CONFLICT DO NOTHING``.

The status (:class:`~cqrs_ddd_advanced_core.scheduling.ScheduledCommandStatus`) is derived from
the queue columns, never stored twice. The scheduler speaks the queue's verbs (``claim /
complete / fail / release / heartbeat / dead_letters / requeue / purge / stats``, see
``queue/README.md``); ``claim_due`` and ``settle_failure`` are their deprecated names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind
from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed, renamed_argument
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.queue import (
    DEAD,
    DONE,
    PENDING,
    Claim,
    DurableQueue,
    Outcome,
    QueueStats,
)
from cqrs_ddd_persistence_sqlalchemy.tables.scheduled import scheduled_commands_table
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["SQLAlchemyCommandScheduler", "command_type_name", "command_type_of"]


def command_type_name(cls: type[Any]) -> str:
    """The stored type name of a command class (``__command_type__`` or the class name)."""
    return str(getattr(cls, "__command_type__", None) or cls.__name__)


def command_type_of(command: Any) -> str:
    """The stored type name of a command object."""
    return command_type_name(type(command))


class SQLAlchemyCommandScheduler:
    """Schedules, cancels and inspects scheduled commands.

    Args:
        bind: engine (fastest), session factory, session or unit of work
            (``session_factory=`` is its deprecated name).
        lease_seconds: how long a claimed command is exclusive while it is dispatched.
        max_attempts: default attempts before a command is dead-lettered (each row keeps
            its own limit: ``schedule(max_attempts=)``).
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
        bind = renamed_argument(
            "SQLAlchemyCommandScheduler", "session_factory", "bind", session_factory, bind
        )
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be >= 1")
        self.table = scheduled_commands_table
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.clock = clock
        # Every row carries its own ``max_attempts``: the queue reads the limit per row.
        self.queue = DurableQueue(
            self.table,
            bind,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            backoff=self.backoff,
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
        uow: SQLAlchemyUnitOfWork | None = None,
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
        uow: SQLAlchemyUnitOfWork | None = None,
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

    async def cancel(
        self,
        command_id: int | None = None,
        *,
        key: str | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> bool:
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

    # -- the queue's verbs (SchedulerWorker) -------------------------------------------------
    async def claim(
        self,
        limit: int = 100,
        *,
        lease_seconds: float | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` due commands (in ``id`` order)."""
        return await self.queue.claim(limit, lease_seconds=lease_seconds, uow=uow)

    async def complete(
        self, claims: Sequence[Claim], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> Outcome:
        """Mark dispatched commands DISPATCHED (only where the lease is still ours)."""
        return await self.queue.complete(claims, uow=uow)

    async def fail(
        self,
        claims: Sequence[Claim],
        *,
        error: str,
        delay: float | None = None,
        retry: bool = True,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Outcome:
        """Count a failed dispatch: due again after the backoff (or ``delay`` seconds), or
        DEAD after the row's ``max_attempts`` (at once with ``retry=False``)."""
        return await self.queue.fail(claims, error=error, delay=delay, retry=retry, uow=uow)

    async def release(
        self, claims: Sequence[Claim], *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> Outcome:
        """Give commands back undispatched, due at once, no attempt counted (shutdown)."""
        return await self.queue.release(claims, uow=uow)

    async def heartbeat(
        self,
        claims: Sequence[Claim],
        *,
        lease_seconds: float | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Outcome:
        """Extend the lease of commands still being dispatched."""
        return await self.queue.heartbeat(claims, lease_seconds=lease_seconds, uow=uow)

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

    async def get(
        self, command_id: int, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> ScheduledCommand | None:
        """The command with ``command_id`` and its current status, or ``None``."""
        t = self.table
        stmt = select(t, self.status_expression().label("cmd_status")).where(t.c.id == command_id)
        async with self.queue.transaction(uow) as executor:
            rows = await executor.fetch_mappings(stmt)
        return self._record(rows[0], rows[0]["cmd_status"]) if rows else None

    async def count_by_status(
        self, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> dict[ScheduledCommandStatus, int]:
        """Number of commands per status (every status present, zeros included)."""
        expr = self.status_expression().label("s")
        async with self.queue.transaction(uow) as executor:
            rows = await executor.fetch(select(expr, func.count()).group_by(expr))
        counts = dict.fromkeys(ScheduledCommandStatus, 0)
        counts.update({ScheduledCommandStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def stats(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> QueueStats:
        """Queue health: counts and the lag of the oldest due command."""
        return await self.queue.stats(uow=uow)

    async def dead_letters(
        self, limit: int = 100, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> list[ScheduledCommand]:
        """Commands that exhausted their attempts, oldest first."""
        rows = await self.queue.dead_letters(limit, uow=uow)
        return [self._record(r, ScheduledCommandStatus.DEAD) for r in rows]

    async def requeue(
        self, ids: Iterable[int] | None = None, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int:
        """Dead commands (all, or ``ids``) back to PENDING, due now, attempts reset."""
        return await self.queue.requeue(None if ids is None else list(ids), uow=uow)

    async def purge(
        self,
        older_than: timedelta | float,
        *,
        include_dead: bool = False,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> int:
        """Delete dispatched and cancelled rows (and dead ones with ``include_dead``) finished
        more than ``older_than`` (a ``timedelta`` or seconds) ago."""
        if not isinstance(older_than, timedelta):
            older_than = timedelta(seconds=older_than)
        statuses = (DONE, DEAD) if include_dead else (DONE,)
        return await self.queue.purge(older_than, statuses=statuses, uow=uow)

    # -- the earlier names (deprecated) --------------------------------------------------------
    async def claim_due(self, limit: int = 100) -> list[Claim]:
        """Deprecated: :meth:`claim`."""
        renamed("SQLAlchemyCommandScheduler.claim_due", "claim")
        return await self.claim(limit)

    async def settle_failure(self, claim: Claim, error: str, *, retry: bool = True) -> bool:
        """Deprecated: :meth:`fail` (``fail([claim], error=...)``, then ``outcome.dead``).
        Returns whether the command is now dead."""
        renamed("SQLAlchemyCommandScheduler.settle_failure", "fail")
        return bool((await self.fail([claim], error=error, retry=retry)).dead)
