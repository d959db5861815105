"""SQLite leadership of singleton workers: an in-process lock.

SQLite serialises writers (``BEGIN IMMEDIATE``), and the library supports one projection runner
process on it; the lock below keeps two runners of one process apart. The checkpoint
compare-and-set still refuses a batch applied by a second process.
"""

from __future__ import annotations

import asyncio
import weakref

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["LocalLock"]

_LOCKS: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()


class LocalLock:
    """A per-process lock keyed by database URL and projection name."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        key = (engine.url.render_as_string(hide_password=True), name)
        lock = _LOCKS.get(key)
        if lock is None:
            lock = asyncio.Lock()
            _LOCKS[key] = lock
        self._lock = lock
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        if self._held:
            return True
        if self._lock.locked():
            return False
        await self._lock.acquire()
        self._held = True
        return True

    async def check(self) -> bool:
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
