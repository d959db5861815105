"""How every long-running worker starts and stops (relay, job worker, scheduler, saga
recovery, projection runner).

- ``await worker.run()`` works until a stop is requested, then finishes what is in flight
  (claims are settled or released, never lost) and returns;
- ``await worker.run_once()`` does one pass and returns how many items it handled;
- ``worker.stop()`` requests the stop and returns an awaitable: ``worker.stop()`` from a signal
  handler or any synchronous code just asks, ``await worker.stop()`` also waits until
  :meth:`run` has returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import Any

from cqrs_ddd_core.waiting import wait_until_set

__all__ = ["StopRequest", "WorkerLifecycle"]


class StopRequest:
    """What :meth:`WorkerLifecycle.stop` returns: awaiting it waits until the worker's
    :meth:`~WorkerLifecycle.run` has returned (at once if it is not running)."""

    __slots__ = ("_stopped",)

    def __init__(self, stopped: asyncio.Event) -> None:
        self._stopped = stopped

    def __await__(self) -> Generator[Any, Any, bool]:
        return self._stopped.wait().__await__()


class WorkerLifecycle:
    """Base of the library's workers: the stop request and the running state.

    A subclass's ``run()`` wraps its loop in ``async with self.running():`` and loops while
    ``not self.stopping``; it waits between polls with :meth:`sleep`, which a stop request
    cuts short.
    """

    def __init__(self) -> None:
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop_requested.is_set()

    @property
    def is_running(self) -> bool:
        """Whether :meth:`run` is under way."""
        return not self._stopped.is_set()

    def stop(self) -> StopRequest:
        """Ask :meth:`run` to return after the work in flight; await the result to wait
        until it has."""
        self._stop_requested.set()
        return StopRequest(self._stopped)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The body of ``run()``: marks the worker running until the block ends. A stop
        requested before ``run()`` started is honoured (the loop does not start)."""
        self._stopped.clear()
        try:
            yield
        finally:
            self._stopped.set()
            self._stop_requested.clear()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop is requested meanwhile."""
        if self._stop_requested.is_set() or seconds <= 0:
            return
        await wait_until_set(self._stop_requested, seconds)
