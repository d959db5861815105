"""Connections a task holds for a loop of single statements (``Execution.pinned()``).

A worker loop (a relay claiming and acknowledging batches, a job worker settling jobs) runs
many one-statement operations back to back. Holding one connection for the loop saves a pool
checkout per statement; the pin is found through a context variable, so the stores need no
extra argument and tasks created inside the block inherit it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar, Token
from typing import Any

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor

__all__ = ["HeldPin", "pinned_executor", "set_pinned", "unpinned"]

# (the Execution that pinned, the executor of its held connection), per task.
_PINNED: ContextVar[tuple[object, Executor] | None] = ContextVar("cqrs_ddd_pinned", default=None)


def pinned_executor(owner: object) -> Executor | None:
    """The executor this task pinned with ``owner`` (an ``Execution``), if any and its
    connection is not lost: after a loss, single statements use pooled connections (each is
    atomic on its own, so nothing changes for them) until the block pins again."""
    pinned = _PINNED.get()
    if pinned is not None and pinned[0] is owner and not _lost(pinned[1]):
        return pinned[1]
    return None


def _lost(executor: Executor) -> bool:
    return bool(getattr(executor, "lost", False))


def set_pinned(value: tuple[object, Executor] | None) -> Token[tuple[object, Executor] | None]:
    return _PINNED.set(value)


def reset_pinned(token: Token[tuple[object, Executor] | None]) -> None:
    _PINNED.reset(token)


@contextmanager
def unpinned() -> Iterator[None]:
    """Inside a task that inherited a pin: pool connections again for the block."""
    token = _PINNED.set(None)
    try:
        yield
    finally:
        _PINNED.reset(token)


class HeldPin:
    """The connection a pinned block holds, lent to other tasks one at a time."""

    def __init__(self, owner: object, executor: Executor) -> None:
        self.value: tuple[object, Executor] | None = (owner, executor)
        self._lock = asyncio.Lock()

    @property
    def lost(self) -> bool:
        """Whether the held connection is gone (closed, or lost to a failure): leave the
        block and pin again to hold a new one."""
        return self.value is None or _lost(self.value[1])

    def borrow(self) -> AbstractAsyncContextManager[None]:
        """Hold the connection for the block (waiting for the current borrower, if any)."""
        return _Borrow(self)

    async def close(self) -> None:
        # Wait for a borrower still using the connection before it goes back to the pool.
        async with self._lock:
            self.value = None


class _Borrow:
    # A class, not an ``@asynccontextmanager``: an async generator per settled job costs
    # more (asyncio's first-iteration hook) than the lock itself.
    __slots__ = ("_pin", "_token")

    def __init__(self, pin: HeldPin) -> None:
        self._pin = pin
        self._token: Token[tuple[object, Executor] | None] | None = None

    async def __aenter__(self) -> None:
        await self._pin._lock.acquire()
        self._token = _PINNED.set(self._pin.value)

    async def __aexit__(self, *exc: Any) -> None:
        if self._token is not None:
            _PINNED.reset(self._token)
        self._pin._lock.release()
