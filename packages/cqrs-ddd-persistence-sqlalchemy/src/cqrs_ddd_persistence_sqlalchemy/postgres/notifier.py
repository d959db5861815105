"""Coalesced ``NOTIFY`` after appends that committed on their own.

A transaction that calls ``pg_notify`` takes a database-wide lock at commit (PostgreSQL queues
notifications in commit order), so concurrent notifying transactions commit one at a time and
their WAL flushes stop being grouped. Measured with 8 writers appending 5-event batches: about
a quarter of the throughput went to that lock.

An autocommit append has committed when its statement returns, so it does not need to notify
inside its own transaction: it *pokes* this notifier, which sends ``NOTIFY`` from a short
transaction of its own after the commit — one at a time per store, folding every poke that
arrives meanwhile into the next one. A subscriber is therefore still woken after every commit
(at most one notifier round trip later), while N concurrent writers cost about one
notification per round trip instead of one each. Appends inside a caller's unit of work still
notify in their own statement: only the caller knows when that commits.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.postgres.driver import driver_statements

__all__ = ["CoalescingNotifier"]

logger = logging.getLogger(__name__)

_NOTIFY = select(func.pg_notify(bindparam("channel", type_=String), ""))


class CoalescingNotifier:
    """One ``NOTIFY channel`` in flight at a time; pokes meanwhile fold into the next one."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def poke(self, engine: AsyncEngine) -> None:
        """Make sure a ``NOTIFY`` is sent after now (call after the commit)."""
        self._dirty = True
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._task = loop.create_task(self._drain(engine), name="cqrs-ddd-notify")

    async def _drain(self, engine: AsyncEngine) -> None:
        try:
            while self._dirty:
                self._dirty = False
                async with engine.connect() as bare:
                    params = {"channel": self.channel}
                    if await driver_statements.fetch(bare, _NOTIFY, params) is None:
                        conn = await bare.execution_options(isolation_level="AUTOCOMMIT")
                        await conn.execute(_NOTIFY, params)
        except Exception as exc:  # a wake-up hint: subscribers fall back to polling
            logger.warning("NOTIFY %s failed after an append: %r", self.channel, exc)

    async def wait(self) -> None:
        """Wait until the pending notification (if any) was sent (tests, shutdown)."""
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            await asyncio.shield(task)
