"""LISTEN/NOTIFY wake-ups (a hint only: workers and subscribers still poll).

Holds one dedicated connection, on asyncpg (``add_listener``) or psycopg 3 (``LISTEN`` in
autocommit, then its ``notifies()`` stream read by a task). Behind a transaction-mode pooler
LISTEN does not work: an engine made with ``create_engine(..., pooler="transaction")`` gets
no listener (the dialect returns ``None``) and relies on polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_core.waiting import wait_until_set
from cqrs_ddd_persistence_sqlalchemy.schema import check_channel

__all__ = ["NotificationListener", "listen_event", "listens"]

logger = logging.getLogger(__name__)

_DRIVERS = frozenset({"asyncpg", "psycopg", "psycopg_async"})


def listens(engine: AsyncEngine) -> bool:
    """Whether the engine's driver is one this module can LISTEN with."""
    return engine.dialect.driver in _DRIVERS


class _Subscription:
    """A LISTEN on one connection calling ``wake`` on every notification of the channel."""

    def __init__(self, conn: AsyncConnection, channel: str, wake: Callable[[], None]) -> None:
        self._conn = conn
        self._channel = channel
        self._wake = wake
        self._driver: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._dead = False

    async def start(self) -> None:
        raw = await self._conn.get_raw_connection()
        driver: Any = raw.driver_connection
        self._driver = driver
        if self._conn.dialect.driver == "asyncpg":
            await driver.add_listener(self._channel, self._on_asyncpg)
            return
        # psycopg 3: notifications arrive only while the connection is being read, so a task
        # reads its ``notifies()`` stream. LISTEN needs autocommit (SQLAlchemy restores the
        # isolation level when the connection goes back to the pool).
        await self._conn.execution_options(isolation_level="AUTOCOMMIT")
        await self._conn.execute(text(f"LISTEN {_quoted(self._channel)}"))
        self._pump = asyncio.get_running_loop().create_task(self._read_notifies())

    def _on_asyncpg(self, *_args: Any) -> None:
        self._wake()

    async def _read_notifies(self) -> None:
        try:
            async for _ in self._driver.notifies():
                self._wake()
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection died: the listener is not alive any more
            self._dead = True
            self._wake()

    @property
    def alive(self) -> bool:
        driver = self._driver
        if driver is None or self._dead:
            return False
        if self._conn.dialect.driver == "asyncpg":
            return not driver.is_closed()
        return not driver.closed

    async def stop(self) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            return
        with contextlib.suppress(Exception):  # the connection may already be gone
            if self._pump is not None:
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
                await self._conn.execute(text("UNLISTEN *"))
            elif not driver.is_closed():
                await driver.remove_listener(self._channel, self._on_asyncpg)


def _quoted(channel: str) -> str:
    # A PostgreSQL identifier, quoted as asyncpg's add_listener quotes it (pg_notify takes the
    # name as it is, so the two must match exactly).
    return '"' + check_channel(channel).replace('"', '""') + '"'


class NotificationListener:
    """``await listener.wait(timeout)`` returns early when ``channel`` is notified.

    Example::

        listener = NotificationListener(engine, "cqrs_ddd_outbox")
        await listener.start()
        woke = await listener.wait(1.0)  # True: notified, False: timed out
        await listener.close()
    """

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self.engine = engine
        self.channel = check_channel(channel)
        self._event = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._subscription: _Subscription | None = None

    async def start(self) -> None:
        """Open the dedicated connection and LISTEN; on failure nothing stays checked out."""
        conn = await self.engine.connect()
        subscription = _Subscription(conn, self.channel, self._event.set)
        try:
            await subscription.start()
        except BaseException:
            await _close_quietly(conn)
            raise
        self._conn, self._subscription = conn, subscription

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is alive."""
        return self._subscription is not None and self._subscription.alive

    async def _restart(self) -> bool:
        """Re-LISTEN after the connection died (server restart, terminated backend)."""
        await self.close()
        try:
            await self.start()
        except Exception:
            logger.debug("re-LISTEN on %s failed; polling until it succeeds", self.channel)
            return False
        logger.info("LISTEN on %s re-established", self.channel)
        return True

    def wake(self) -> None:
        """Wake a waiter now (used for shutdown)."""
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a notification; ``True`` when woken early.

        A dead LISTEN connection is re-established here. Notifications sent while it was down
        are lost, so a successful re-LISTEN reports a wake-up: the caller polls once.
        """
        if not self.listening:
            if await self._restart():
                return True
            await asyncio.sleep(seconds)
            return False
        try:
            return await wait_until_set(self._event, seconds)
        finally:
            self._event.clear()

    async def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        try:
            if subscription is not None:
                await subscription.stop()
        finally:
            if self._conn is not None:
                await _close_quietly(self._conn)
            self._conn = None


async def _close_quietly(conn: AsyncConnection) -> None:
    try:
        await conn.close()
    except Exception:  # a dead connection may fail to close; it is discarded either way
        logger.debug("closing the LISTEN connection failed", exc_info=True)
        await conn.invalidate()


@contextlib.asynccontextmanager
async def listen_event(
    engine: AsyncEngine, channel: str, *, enabled: bool = True
) -> AsyncIterator[asyncio.Event | None]:
    """An event set on every NOTIFY of ``channel`` for the block (``None`` with a driver this
    module cannot LISTEN with, or when not ``enabled``: the caller polls)."""
    if not enabled or not listens(engine):
        yield None
        return
    woken = asyncio.Event()
    async with engine.connect() as conn:
        subscription = _Subscription(conn, channel, woken.set)
        await subscription.start()
        try:
            yield woken
        finally:
            await subscription.stop()
