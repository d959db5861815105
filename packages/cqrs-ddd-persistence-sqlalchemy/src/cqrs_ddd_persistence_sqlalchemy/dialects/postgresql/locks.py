"""PostgreSQL leadership of singleton workers: a session advisory lock.

One runner per projection: a session-level advisory lock held on a dedicated autocommit
connection (no open transaction, so it never holds back the event store's horizon). The lock key
hashes the connection's ``current_schema()`` with the projection name, so the same projection in
two schemas of one database does not contend. A killed process loses its connection and with it
the lock; the checkpoint compare-and-set makes a stale runner harmless anyway.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.errors import translating

__all__ = ["AdvisoryLock", "lock_key"]


def lock_key(namespace: str, name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` in ``namespace``."""
    digest = hashlib.blake2b(f"cqrs_ddd.projection:{namespace}:{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class AdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own, held until :meth:`release`."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self._engine = engine
        self._name = name
        self._conn: AsyncConnection | None = None
        self._key: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def try_acquire(self) -> bool:
        """Take the lock if free; ``False`` when another session holds it."""
        if self.held:
            return True
        with translating():
            conn = await self._engine.connect()
            try:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                schema = (await conn.execute(sa.select(sa.func.current_schema()))).scalar_one()
                key = lock_key(str(schema), self._name)
                got = (
                    await conn.execute(sa.select(sa.func.pg_try_advisory_lock(key)))
                ).scalar_one()
            except BaseException:
                await conn.close()
                raise
        if not got:
            await conn.close()
            return False
        self._conn, self._key = conn, key
        return True

    async def check(self) -> bool:
        """Whether the lock is still held (its connection is alive)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            await self._conn.execute(sa.select(1))
        except Exception:
            await self.release()
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.closed and self._key is not None:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(self._key)))
        except Exception:  # the connection is gone: so is the lock
            pass
        finally:
            await conn.close()
