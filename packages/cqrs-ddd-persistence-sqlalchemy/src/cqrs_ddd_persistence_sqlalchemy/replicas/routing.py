"""Routing query-side reads to streaming replicas: :class:`ReplicaSet`.

Writes, and every read inside a unit of work, run on the primary. A read outside one (the
repository's ``get`` / ``search``, the projection store's reads, the event store's ``read_all``
/ ``subscribe``) asks the replica set of its engine for a replica (:meth:`ReplicaSet.choose`):

- Health and lag are checked at most every ``check_interval`` seconds, by the first read that
  finds them stale (one query on the primary, one per replica): a replica that does not answer,
  is not a standby (promoted), or lags more than ``max_lag`` seconds is skipped until the next
  check. A read that finds its replica gone (``ConnectionLostError``) marks it down and runs on
  the primary.
- Read-your-writes: when the context carries a commit position (:mod:`.position`), only a
  replica that has replayed it serves the read. The one furthest ahead is asked again, backing
  off from 2 ms, for at most ``read_your_writes_timeout`` seconds; then the read runs on the
  primary.
- Among the eligible replicas, reads take turns.

Lag is measured the usual way: zero for a replica that has replayed everything the primary had
flushed when the check began, else the age of the last commit it replayed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError, ConnectionLostError, CQRSDDDError
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.dialects.interface import ReplicationSql
from cqrs_ddd_persistence_sqlalchemy.errors import translate
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.replicas import position
from cqrs_ddd_persistence_sqlalchemy.replicas.registry import attach

__all__ = ["Replica", "ReplicaSet", "attach_replicas"]

logger = logging.getLogger(__name__)

#: First pause between two looks at a replica that has not replayed a commit yet (doubling).
_FIRST_WAIT = 0.002
_LONGEST_WAIT = 0.05
#: Seconds a server has to answer a health check before it counts as down.
CHECK_TIMEOUT = 2.0


class Replica:
    """One replica of a :class:`ReplicaSet` and what the last check learnt of it."""

    __slots__ = ("engine", "execution", "replayed", "sessions", "usable")

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.execution: Execution = execution_for(engine)
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        #: How far it had replayed when last asked (a WAL byte position).
        self.replayed = 0
        #: Up, a standby, and within the lag limit at the last check (and not lost since).
        self.usable = False


class ReplicaSet:
    """The replicas of one primary engine (see the module docstring).

    Args:
        primary: the primary's engine (writes, units of work, fallback of every read).
        replicas: engines of hot standbys streaming from it.
        max_lag: seconds of replay lag past which a replica is skipped.
        read_your_writes_timeout: seconds a read waits for a replica to replay the context's
            last commit before it runs on the primary.
        check_interval: seconds the health and lag of the replicas are trusted.
        owned: whether :meth:`dispose` disposes the replicas' engines (``create_engine`` made
            them).
    """

    def __init__(
        self,
        primary: AsyncEngine,
        replicas: Sequence[AsyncEngine],
        *,
        max_lag: float = 5.0,
        read_your_writes_timeout: float = 0.5,
        check_interval: float = 1.0,
        owned: bool = False,
    ) -> None:
        support = dialect_for(primary)
        sql = support.replication
        if sql is None:
            raise ConfigurationError(
                f"read replicas need PostgreSQL streaming replication; "
                f"{support.name} has none: remove replicas="
            )
        for engine in replicas:
            if not isinstance(engine, AsyncEngine):
                raise ConfigurationError(
                    f"a replica must be an AsyncEngine, got {type(engine).__name__}"
                )
            if dialect_for(engine) is not support:
                raise ConfigurationError(
                    f"a replica must be a {support.name} standby, got a "
                    f"{dialect_for(engine).name} engine"
                )
        if not replicas:
            raise ConfigurationError("a ReplicaSet needs at least one replica")
        for name, value in (
            ("max_lag", max_lag),
            ("read_your_writes_timeout", read_your_writes_timeout),
            ("check_interval", check_interval),
        ):
            if not (isinstance(value, int | float) and value >= 0):
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
        self.primary = primary
        self.replicas = [Replica(engine) for engine in replicas]
        self.max_lag = float(max_lag)
        self.read_your_writes_timeout = float(read_your_writes_timeout)
        self.check_interval = float(check_interval)
        self._sql: ReplicationSql = sql
        self._primary = execution_for(primary)
        self._owned = owned
        self._checked = -math.inf
        self._checking: asyncio.Future[None] | None = None
        self._turn = 0

    # -- choosing ------------------------------------------------------------------------------
    async def choose(self) -> Replica | None:
        """The replica the next read should run on, or ``None`` for the primary."""
        if time.monotonic() - self._checked >= self.check_interval:
            await self.check()
        usable = [r for r in self.replicas if r.usable]
        if not usable:
            return None
        self._turn = turn = (self._turn + 1) % len(usable)
        wanted = position.position()
        if wanted is None:
            return usable[turn]
        if wanted == position.PRIMARY_ONLY:
            return None
        for replica in usable[turn:] + usable[:turn]:
            if replica.replayed >= wanted:
                return replica
        return await self._wait_for(max(usable, key=lambda r: r.replayed), wanted)

    async def _wait_for(self, replica: Replica, wanted: int) -> Replica | None:
        """``replica`` once it has replayed ``wanted``; ``None`` after the timeout."""
        deadline = time.monotonic() + self.read_your_writes_timeout
        pause = _FIRST_WAIT
        while True:
            try:
                replica.replayed = await self._sql.replayed(replica.execution)
            except CQRSDDDError as exc:
                self.lost(replica, exc)
                return None
            if replica.replayed >= wanted:
                return replica
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_WAIT)

    async def check(self) -> None:
        """Ask the primary how far it has flushed and each replica how far it has replayed;
        mark each usable or not. A server that does not answer within ``CHECK_TIMEOUT``
        seconds counts as down. While a check runs, concurrent callers use what the last one
        found (the first check of the set is waited for)."""
        running = self._checking
        if running is not None:
            if self._checked == -math.inf:
                await asyncio.shield(running)
            return
        self._checking = asyncio.get_running_loop().create_future()
        try:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    flushed: int | None = await self._sql.primary_position(self._primary)
            except (CQRSDDDError, TimeoutError):
                flushed = None  # the primary is away: judge by the age of the last replay
            await asyncio.gather(*(self._check(r, flushed) for r in self.replicas))
            self._checked = time.monotonic()
        finally:
            done, self._checking = self._checking, None
            done.set_result(None)

    async def _check(self, replica: Replica, flushed: int | None) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                status = await self._sql.status(replica.execution)
        except (CQRSDDDError, TimeoutError) as exc:
            logger.info("replica %s skipped: %s", _name(replica), exc or "no answer in time")
            replica.usable = False
            return
        replica.replayed = status.replayed
        if not status.standby:
            logger.warning("replica %s skipped: it is not a standby", _name(replica))
            replica.usable = False
            return
        if flushed is not None and status.replayed >= flushed:
            lag = 0.0
        else:
            lag = status.replay_age if status.replay_age is not None else math.inf
        replica.usable = lag <= self.max_lag
        if not replica.usable:
            logger.info("replica %s skipped: %.1f s behind", _name(replica), lag)

    def lost(self, replica: Replica, exc: BaseException) -> bool:
        """Whether ``exc`` (raised on ``replica``) means the replica is unreachable; if so it is
        skipped until the next check."""
        error = exc if isinstance(exc, CQRSDDDError) else translate(exc)
        if not isinstance(error, ConnectionLostError):
            return False
        logger.info("replica %s lost: %s", _name(replica), error)
        replica.usable = False
        return True

    async def session(self, replica: Replica) -> AsyncSession | None:
        """A session on ``replica`` with its connection open, or ``None`` if it is gone."""
        session = replica.sessions()
        try:
            await session.connection()
        except Exception as exc:
            await session.close()
            if self.lost(replica, exc):
                return None
            raise
        return session

    # -- read-your-writes ------------------------------------------------------------------------
    async def note_commit(self) -> None:
        """Record the primary's WAL position after a commit in the current context (reads in
        it then wait for a replica that replayed it). Never raises: a position that cannot be
        read sends this context's reads to the primary."""
        try:
            lsn = await self._sql.commit_position(self._primary)
        except CQRSDDDError as exc:
            logger.warning("the commit position could not be read (%s): reads use the primary", exc)
            lsn = position.PRIMARY_ONLY
        position.record(lsn)

    async def dispose(self) -> None:
        """Dispose the replicas' engines if this set made them."""
        if self._owned:
            for replica in self.replicas:
                await replica.engine.dispose()


def _name(replica: Replica) -> str:
    url = replica.engine.url
    return f"{url.host}:{url.port}"


def attach_replicas(
    engine: AsyncEngine,
    replicas: Sequence[AsyncEngine],
    *,
    max_lag: float = 5.0,
    read_your_writes_timeout: float = 0.5,
    check_interval: float = 1.0,
) -> ReplicaSet:
    """Route the query-side reads of the stores built on ``engine`` to ``replicas`` (engines
    the application made and disposes). Attach before the stores' first read.

    Example::

        primary = create_engine("postgresql+asyncpg://app@db-primary/app")
        standby = create_engine("postgresql+asyncpg://app@db-replica-1/app")
        attach_replicas(primary, [standby], max_lag=2.0)
    """
    replica_set = ReplicaSet(
        engine,
        replicas,
        max_lag=max_lag,
        read_your_writes_timeout=read_your_writes_timeout,
        check_interval=check_interval,
    )
    attach(engine.sync_engine, replica_set)
    return replica_set
