"""``Lease``: one holder at a time of a named role, fenced by a token that only grows.

A lease is a row of ``cqrs_leases`` (``name``, ``owner``, ``token``, ``expires_at``), used
by the projection runner (one runner per projection) and usable for any leader election:

- **acquire** is one statement in a transaction of its own: insert the row, or take it over if
  it has expired, adding one to its token (``INSERT … ON CONFLICT DO UPDATE … WHERE expired``).
  A read first skips that statement while the lease is plainly live: the upsert would lock the
  row, and so queue behind the holder's batch in flight (its fence holds the row);
- **renew** (the heartbeat, :meth:`Lease.keep` every ``renew_interval``) moves ``expires_at``
  forward while the token is still the holder's;
- **release** sets ``expires_at`` to now: a holder that stops frees the role at once; one that
  dies frees it when the lease expires (``duration`` after its last renewal);
- **fence**: inside the holder's own unit of work, :meth:`Lease.fence` renews the lease only if
  its token is still the current one and raises :class:`LeaseLostError` otherwise, so a stale
  holder's transaction rolls back and changes nothing. On PostgreSQL the fence's row lock also
  makes a takeover wait until that transaction has ended; on SQLite the fence makes the
  transaction the database's single writer.

Times come from the database's clock only (``utcclock``), so the clocks of the processes sharing
a lease do not matter. No statement of a lease holds a transaction open (the event store's
commit-safe horizon waits for every open transaction) and none relies on session state, so
leases work behind a transaction-mode pooler (PgBouncer) as well as on direct connections.

Example:
    >>> lease = Lease(engine, "nightly-report", duration=30.0)
    >>> if await lease.acquire():
    ...     try:
    ...         while await lease.keep():      # renews when renew_interval has passed
    ...             async with SQLAlchemyUnitOfWork(session_factory) as uow:
    ...                 await lease.fence(uow)  # LeaseLostError if another holder took over
    ...                 ...                     # the leader's writes
    ...                 await uow.commit()
    ...     finally:
    ...         await lease.release()
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import (
    ConfigurationError,
    LeaseLostError,
    LockTimeoutError,
    PersistenceError,
)
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution, kept
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import fencing_refused, lease_lost
from cqrs_ddd_persistence_sqlalchemy.tables.leases import leases_table
from cqrs_ddd_persistence_sqlalchemy.types.clock import utcclock, utcclock_after
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["Lease", "lease_timing"]

logger = logging.getLogger(__name__)

_t = leases_table
_c = _t.c

_SECONDS = sa.bindparam("p_seconds", type_=sa.Float)
# The heartbeat and the fence: only the current token moves the deadline.
_RENEW = kept(
    sa.update(_t)
    .where(_c.name == sa.bindparam("p_name"), _c.token == sa.bindparam("p_token"))
    .values(expires_at=utcclock_after(_SECONDS))
    .returning(_c.token)
)
_RELEASE = kept(
    sa.update(_t)
    .where(_c.name == sa.bindparam("p_name"), _c.token == sa.bindparam("p_token"))
    .values(expires_at=utcclock())
)
_GET = kept(sa.select(_t).where(_c.name == sa.bindparam("p_name")))
# Whether the lease is live by the database's clock (no lock taken: never waits for a holder).
_LIVE = kept(sa.select(_c.expires_at > utcclock()).where(_c.name == sa.bindparam("p_name")))

_ACQUIRE: dict[DialectSupport, Any] = {}


def _acquire_statement(dialect: DialectSupport) -> Any:
    """``INSERT … ON CONFLICT (name) DO UPDATE … WHERE expired RETURNING token``, built once
    per dialect: a free name is taken with token 1, an expired lease is taken over with the next
    token, a live one is left alone (no row returned)."""
    built = _ACQUIRE.get(dialect)
    if built is None:
        ins = dialect.insert(_t).values(
            name=sa.bindparam("p_name"),
            owner=sa.bindparam("p_owner"),
            token=1,
            expires_at=utcclock_after(_SECONDS),
        )
        built = ins.on_conflict_do_update(
            index_elements=[_c.name],
            set_={
                "owner": ins.excluded.owner,
                "token": _c.token + 1,
                "expires_at": ins.excluded.expires_at,
            },
            where=_c.expires_at <= utcclock(),
        ).returning(_c.token)
        _ACQUIRE[dialect] = built = kept(built)
    return built


def lease_timing(duration: float, renew_interval: float | None) -> tuple[float, float]:
    """``(duration, renew_interval)`` checked (``ConfigurationError``), the interval defaulting
    to a third of the duration."""
    if not duration > 0:
        raise ConfigurationError(f"lease duration must be positive, got {duration!r}")
    interval = duration / 3 if renew_interval is None else renew_interval
    if not 0 < interval < duration:
        raise ConfigurationError(
            f"lease renew interval must be positive and shorter than the lease duration "
            f"({duration}s), got {interval!r}"
        )
    return float(duration), float(interval)


def _default_owner() -> str:
    """Who holds a lease, for people reading the table: host, process id and a random part
    (two leases of one process are two owners)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """A fenced lease on the role ``name`` (see the module documentation).

    Args:
        engine: the database of the lease (its own short statements run on this engine's pool,
            never in a caller's transaction).
        name: the role (at most 200 characters); a projection runner uses
            ``projection:<projection name>``.
        duration: seconds a lease lasts after it was taken or last renewed: how long a dead
            holder keeps the role from the others.
        renew_interval: seconds between renewals by :meth:`keep` (default: a third of
            ``duration``); must be shorter than ``duration``.
        owner: the holder's name in the table (default: host, pid and a random part).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        duration: float = 30.0,
        renew_interval: float | None = None,
        owner: str | None = None,
    ) -> None:
        for what, value in (("name", name), ("owner", owner)):
            if value is None and what == "owner":
                continue
            if not isinstance(value, str) or not value or len(value) > 200:
                raise ConfigurationError(
                    f"lease {what} must be a string of 1 to 200 characters, got {value!r:.80}"
                )
        self.name = name
        self.duration, self.renew_interval = lease_timing(duration, renew_interval)
        self.owner = owner or _default_owner()
        self._binding = Binding(engine, owner="Lease")
        self._token: int | None = None
        #: local monotonic times: when the lease was last renewed, when it surely ends
        self._renewed = 0.0
        self._deadline = 0.0

    # -- state ---------------------------------------------------------------------------
    @property
    def token(self) -> int | None:
        """The fencing token of the lease held (``None`` when not held)."""
        return self._token

    @property
    def held(self) -> bool:
        """Whether this object holds the lease, by its own clock: taken, and not past its
        duration since the last renewal (a conservative guess; the fence is what decides)."""
        return self._token is not None and time.monotonic() < self._deadline

    async def holder(self) -> dict[str, Any] | None:
        """The lease row (``name``, ``owner``, ``token``, ``expires_at``), ``None`` before the
        lease was first taken."""
        rows = await self._execution().fetch_mappings(_GET, {"p_name": self.name})
        return dict(rows[0]) if rows else None

    # -- taking, keeping, giving back ----------------------------------------------------
    async def acquire(self) -> bool:
        """Take the lease if it is free or has expired (renew it if this object holds it);
        whether it is held now. One statement, in a transaction of its own."""
        if self._token is not None:
            return await self.renew()
        execution = self._execution()
        started = time.monotonic()
        try:
            live = await execution.fetch(_LIVE, {"p_name": self.name})
            if live and live[0][0]:
                return False
            rows = await execution.fetch(
                _acquire_statement(dialect_for(execution.dialect)),
                {"p_name": self.name, "p_owner": self.owner, "p_seconds": self.duration},
            )
        except LockTimeoutError:
            # the row (PostgreSQL, with a lock timeout) or the database (SQLite: every
            # transaction is a writer) is held by a transaction in flight: not free now
            return False
        if not rows:
            return False
        self._held_from(started, int(rows[0][0]))
        logger.info("lease %s taken by %s (token %d)", self.name, self.owner, self._token)
        return True

    async def renew(self) -> bool:
        """Move the deadline ``duration`` ahead if the lease is still this object's; whether
        it is. A lease taken over by another holder is lost for good."""
        token = self._token
        if token is None:
            return False
        started = time.monotonic()
        rows = await self._execution().fetch(_RENEW, self._params(token))
        if not rows:
            self._lost()
            return False
        self._held_from(started, token)
        return True

    async def keep(self) -> bool:
        """Renew the lease when ``renew_interval`` has passed since its last renewal; whether
        it is still held. Call it at least every ``renew_interval`` (a holder's loop)."""
        if self._token is None:
            return False
        if time.monotonic() - self._renewed >= self.renew_interval:
            return await self.renew()
        return self.held

    async def release(self) -> None:
        """Give the lease back at once (it expires now). A failure to reach the database is
        logged, not raised: the lease then frees itself at expiry."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            await self._execution().execute(_RELEASE, self._params(token))
        except PersistenceError as exc:
            logger.warning(
                "lease %s: could not release it (%s); it expires in at most %.1fs",
                self.name,
                exc,
                self.duration,
            )
        else:
            logger.info("lease %s released by %s (token %d)", self.name, self.owner, token)

    # -- fencing ---------------------------------------------------------------------------
    async def fence(self, uow: SQLAlchemyUnitOfWork) -> None:
        """Refuse ``uow``'s transaction unless this object's token is still the lease's
        current one; renews the lease as it checks. Run it first in every transaction the
        holder writes in.

        Raises:
            LeaseLostError: the lease is not held, or another holder took it over (roll the
                transaction back: the caller must stop acting as the holder).
        """
        token = self._token
        if token is None:
            fencing_refused(self.name)
            raise LeaseLostError(f"lease {self.name!r} is not held by {self.owner}")
        started = time.monotonic()
        async with self._binding.transaction(uow) as executor:
            rows = await executor.fetch(_RENEW, self._params(token))
        if not rows:
            self._lost()
            fencing_refused(self.name)
            raise LeaseLostError(
                f"lease {self.name!r}: token {token} of {self.owner} is no longer the current "
                "one (another holder took over); the transaction is refused"
            )
        self._held_from(started, token)

    # -- internals ---------------------------------------------------------------------------
    def _execution(self) -> Execution:
        execution = self._binding.execution()
        if execution is None:  # pragma: no cover - Binding(engine) always has one
            raise ConfigurationError("Lease needs an engine")
        return execution

    def _params(self, token: int) -> dict[str, Any]:
        return {"p_name": self.name, "p_token": token, "p_seconds": self.duration}

    def _held_from(self, started: float, token: int) -> None:
        self._token = token
        self._renewed = started
        self._deadline = started + self.duration

    def _lost(self) -> None:
        logger.warning(
            "lease %s: token %s of %s was taken over", self.name, self._token, self.owner
        )
        lease_lost(self.name)
        self._token = None

    def __repr__(self) -> str:
        state = f"token {self._token}" if self._token is not None else "not held"
        return f"<Lease {self.name!r} {self.owner} ({state})>"
