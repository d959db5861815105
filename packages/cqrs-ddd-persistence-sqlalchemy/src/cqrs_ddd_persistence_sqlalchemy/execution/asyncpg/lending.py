"""Pooled connections lent to single statements until the end of the event-loop step.

A task running statements back to back (a claim, then one fenced settle per job; one append
after another) runs them on one connection, as a hand-written worker holding its connection
does, instead of paying a pool checkout and checkin per statement (two greenlet switches and
the pool's events: about as much client CPU as the statement itself).
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection

from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import greenlet_spawn

__all__ = ["Held", "Lender", "lender_for"]

logger = logging.getLogger(__name__)


class Held:
    """A pooled connection lent to queue statements: the pool's proxy and its asyncpg
    connection, and the :class:`Lender` generation (engine disposals) it was taken in."""

    __slots__ = ("driver", "fairy", "generation")

    def __init__(self, fairy: PoolProxiedConnection, generation: int) -> None:
        self.fairy = fairy
        self.driver: Any = fairy.driver_connection
        self.generation = generation


class Lender:
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
        self.idle: list[Held] = []
        self.stale: list[Held] = []
        self.flush_due = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0
        self.closing: set[asyncio.Task[Any]] = set()

    def take(self) -> Held | None:
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

    async def checkout(self, engine: Engine) -> Held:
        """A connection from the pool (its checkout events run as usual)."""
        return await greenlet_spawn(self._checkout, engine)

    def _checkout(self, engine: Engine) -> Held:
        return Held(engine.raw_connection(), self.generation)

    def park(self, held: Held) -> None:
        """``held`` is free again: lend it until the end of this loop step."""
        self.idle.append(held)
        self._schedule_flush()

    def discard(self, held: Held) -> None:
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


def _give_back(items: Sequence[Held], generation: int) -> None:
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


_LENDERS: WeakKeyDictionary[Engine, Lender] = WeakKeyDictionary()


def lender_for(engine: Engine) -> Lender:
    """The lender of ``engine``'s pool (one per engine, closed with ``engine.dispose()``)."""
    lender = _LENDERS.get(engine)
    if lender is None:
        lender = _LENDERS[engine] = Lender()
        event.listen(engine, "engine_disposed", lender.on_dispose)
    return lender
