"""LISTEN/NOTIFY wake-ups for queue workers (a hint only: workers still poll).

Holds one dedicated connection. Behind PgBouncer in transaction mode LISTEN does not work —
switch it off (``listen=False`` on the relay) and rely on polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.queue import check_channel

__all__ = ["NotificationListener", "listen_event"]

logger = logging.getLogger(__name__)


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
        self._driver: Any = None

    async def start(self) -> None:
        """Open the dedicated connection and LISTEN; on failure nothing stays checked out."""
        conn = await self.engine.connect()
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(self.channel, self._on_notify)
        except BaseException:
            await _close_quietly(conn)
            raise
        self._conn, self._driver = conn, driver

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is alive."""
        return self._driver is not None and not self._driver.is_closed()

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

    def _on_notify(self, *_args: Any) -> None:
        self._event.set()

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
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True

    async def close(self) -> None:
        try:
            if self._driver is not None and not self._driver.is_closed():
                await self._driver.remove_listener(self.channel, self._on_notify)
        except Exception:  # the connection may already be gone; closing is best effort
            logger.debug("removing the LISTEN callback failed", exc_info=True)
        finally:
            if self._conn is not None:
                await _close_quietly(self._conn)
            self._conn = None
            self._driver = None


async def _close_quietly(conn: AsyncConnection) -> None:
    try:
        await conn.close()
    except Exception:  # a dead connection may fail to close; it is discarded either way
        logger.debug("closing the LISTEN connection failed", exc_info=True)
        await conn.invalidate()


@contextlib.asynccontextmanager
async def listen_event(engine: AsyncEngine, channel: str) -> AsyncIterator[asyncio.Event | None]:
    """An event set on every NOTIFY of ``channel`` for the block (``None``: the driver has no
    LISTEN support the library uses — asyncpg's ``add_listener`` — so the caller polls)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if engine.dialect.driver != "asyncpg" or driver is None:
            yield None
            return
        woken = asyncio.Event()

        def _wake(*_: Any) -> None:
            woken.set()

        await driver.add_listener(channel, _wake)
        try:
            yield woken
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await driver.remove_listener(channel, _wake)
