"""Coalesced ``NOTIFY`` for appends that commit on their own (outside any unit of work).

A transaction that calls ``pg_notify`` takes a database-wide lock at commit (PostgreSQL queues
notifications in commit order), so concurrent notifying transactions commit one at a time and
their WAL flushes stop being grouped. Measured with 8 writers appending 5-event batches: about
a quarter of the throughput went to that lock.

The rule, per store and process:

- an append that runs alone notifies in its own statement (no extra round trip, and with
  nobody to contend with the lock costs nothing);
- an append that overlaps others does not; after its commit it leaves a notification *owed*;
- under sustained load the first append to *start* once the last notification is older than
  ``max_delay`` carries the owed one in its own statement: it commits after every append that
  had committed when it started, so its notification covers them (no extra statement, no
  extra round trip: a separate ``NOTIFY`` transaction per slot cost 8 writers ~8 % more
  statements, each with its own commit and lock);
- whoever finishes the last running append (the end of a burst) while a notification is owed
  sends one ``NOTIFY`` from a short transaction of its own, inside its own call.

So every committed append is followed by a notification — within the call that ends its burst,
or with the next append that starts after ``max_delay`` under sustained load — while N
overlapping writers cost about one notification per burst or slot instead of N. Nothing runs
in the background: no task can outlive the caller's event loop or hold a pooled connection
after the caller is done. Appends inside a caller's unit of work still notify in their own
statement: only the caller knows when that commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["NotifyCoalescer"]

logger = logging.getLogger(__name__)


class NotifyCoalescer:
    """Decides per append whether it notifies in-statement, and sends owed notifications."""

    def __init__(self, channel: str, *, max_delay: float = 0.005) -> None:
        self.channel = channel
        self.max_delay = max_delay
        self._running = 0
        self._owed = False
        self._sent_at = 0.0

    def begin(self) -> bool:
        """An append starts; returns whether its statement should notify: it runs alone, or
        a notification is owed and the last one is at least ``max_delay`` old."""
        self._running += 1
        if self._running == 1:
            self._owed = False  # this statement's notification covers everything before it
            self._sent_at = time.monotonic()
            return True
        if self._owed:
            now = time.monotonic()
            if now - self._sent_at >= self.max_delay:
                self._owed = False
                self._sent_at = now
                return True
        return False

    def abandon(self) -> None:
        """An append ended without :meth:`end` (failed or cancelled; it may have committed
        before the failure, so a notification is owed — the next finisher sends it)."""
        self._running -= 1
        self._owed = True

    async def end(self, send: Callable[[], Awaitable[Any]], *, notified: bool) -> None:
        """An append committed; ``send()`` the owed notification if this call ends a burst
        (a NOTIFY in a transaction of its own).

        Even an append that notified in its statement may have to: one that overlapped it may
        have committed after it. While other appends run, the owed notification waits for the
        next one to start (see :meth:`begin`) or for the last one to finish.
        """
        self._running -= 1
        if not notified:
            self._owed = True
        if not self._owed or self._running:
            return
        now = time.monotonic()
        self._owed = False
        self._sent_at = now
        try:
            await send()
        except Exception as exc:  # a wake-up hint: subscribers fall back to polling
            self._owed = True
            logger.warning("NOTIFY %s failed after an append: %r", self.channel, exc)
