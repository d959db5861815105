"""The fenced terminal writes of a queue table: complete, release, heartbeat, fail.

Every write checks the claim's lease token (a row whose lease was taken over is reported in
``Outcome.lost``, never written); :meth:`QueueSettling.fail` counts the attempt and schedules
the retry with the backoff, or dead-letters the row at its attempt limit. Part of
:class:`~.durable.DurableQueue` (see its module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import String, bindparam, update

from cqrs_ddd_persistence_sqlalchemy.deprecation import renamed
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.queue.base import QueueBase
from cqrs_ddd_persistence_sqlalchemy.queue.claims import Claim, Outcome, lost
from cqrs_ddd_persistence_sqlalchemy.tables.queue import DEAD, DONE
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = ["QueueSettling"]

_NOW = bindparam("q_now", type_=UTCDateTime())


class QueueSettling(QueueBase):
    """Complete / release / heartbeat / fail claimed rows, each fenced by its lease token."""

    # -- terminal writes (fenced) -----------------------------------------------------------
    async def complete(self, claims: Sequence[Claim], *, uow: Any = None) -> Outcome:
        """Mark claimed rows done (``finished_at`` = now). Rows whose lease was lost are not
        touched and are reported in ``Outcome.lost``."""
        done = await self._fenced(
            "complete",
            claims,
            {"status": DONE, "finished_at": _NOW, "lease_token": None, "locked_until": None},
            {"q_now": self.clock()},
            uow,
        )
        return Outcome(done=done, lost=lost(claims, done))

    async def release(self, claims: Sequence[Claim], *, uow: Any = None) -> Outcome:
        """Give claimed rows back untouched (no attempt counted), due at once (shutdown)."""
        released = await self._fenced(
            "release", claims, {"lease_token": None, "locked_until": None}, {}, uow
        )
        return Outcome(released=released, lost=lost(claims, released))

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
        return Outcome(extended=extended, lost=lost(claims, extended))

    async def fail(
        self,
        claims: Sequence[Claim],
        *,
        error: str,
        delay: float | None = None,
        retry: bool = True,
        uow: Any = None,
    ) -> Outcome:
        """Count a failed attempt: retry after the backoff (or ``delay`` seconds), or
        dead-letter the row once it has failed its attempt limit (``max_attempts``, or the
        row's own ``max_attempts`` column). ``retry=False`` dead-letters at once (an unknown
        job type: nothing to retry)."""
        if not retry:
            return await self._dead_now(claims, error=error, uow=uow)
        t = self.table
        now = self.clock()
        retried: list[int] = []
        dead: list[int] = []
        async with self.transaction(uow) as executor:
            for claim in claims:
                attempts = claim.attempts + 1
                limit = self._limit_of(claim)
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_error": error,
                    "lease_token": None,
                    "locked_until": None,
                }
                if attempts >= limit:
                    values.update(status=DEAD, finished_at=now)
                else:
                    wait = (
                        delay
                        if delay is not None
                        else self.backoff.seconds(attempts, rng=self._rng)
                    )
                    values["available_at"] = now + timedelta(seconds=wait)
                stmt = (
                    update(t)
                    .where(t.c.id == claim.id, t.c.lease_token == claim.token)
                    .values(**values)
                    .returning(t.c.id)
                )
                if await executor.fetch(stmt):
                    (dead if attempts >= limit else retried).append(claim.id)
        settled = (*retried, *dead)
        return Outcome(retried=tuple(retried), dead=tuple(dead), lost=lost(claims, settled))

    def _limit_of(self, claim: Claim) -> int:
        if self._row_limit is not None:
            own = claim.values.get("max_attempts")
            if own is not None:
                return int(own)
        return self.max_attempts

    async def _dead_now(self, claims: Sequence[Claim], *, error: str, uow: Any) -> Outcome:
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
        return Outcome(dead=dead, lost=lost(claims, dead))

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

        def build(dialect: DialectSupport) -> Any:
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
        async with self.transaction(uow) as executor:
            stmt = self.statement(name, build, dialect_for(executor.dialect))
            for token, ids in by_token.items():
                found = await executor.fetch(stmt, {**params, "q_ids": ids, "q_fence": token})
                written.extend(row[0] for row in found)
        return tuple(sorted(written))

    # -- the earlier names ---------------------------------------------------------------------
    async def ack(self, claims: Sequence[Claim], *, uow: Any = None) -> Outcome:
        """Deprecated: :meth:`complete`."""
        renamed("DurableQueue.ack", "complete")
        return await self.complete(claims, uow=uow)

    async def nack(
        self,
        claims: Sequence[Claim],
        *,
        error: str,
        delay: float | None = None,
        uow: Any = None,
    ) -> Outcome:
        """Deprecated: :meth:`fail`."""
        renamed("DurableQueue.nack", "fail")
        return await self.fail(claims, error=error, delay=delay, uow=uow)

    async def dead_letter(self, claims: Sequence[Claim], *, error: str, uow: Any = None) -> Outcome:
        """Deprecated: ``fail(claims, error=..., retry=False)``."""
        renamed("DurableQueue.dead_letter", "fail(..., retry=False)")
        return await self._dead_now(claims, error=error, uow=uow)
