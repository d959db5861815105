"""Waiting for an ``asyncio.Event`` with a timeout, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returns normally when the task is
cancelled in the same event-loop step as the event is set: the cancellation is lost. A worker or
subscriber looping on such a wait then never ends after ``task.cancel()``. ``asyncio.timeout``
(3.11+) awaits in the task itself and has no such race.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_until_set"]


async def wait_until_set(event: asyncio.Event, seconds: float | None) -> bool:
    """Whether ``event`` was set within ``seconds`` (``None``: no limit)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
