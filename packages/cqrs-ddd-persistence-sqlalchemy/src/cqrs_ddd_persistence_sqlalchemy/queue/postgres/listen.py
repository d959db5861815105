"""LISTEN/NOTIFY wake-ups for queue workers (a hint only: workers still poll).

Holds one dedicated connection. Behind PgBouncer in transaction mode LISTEN does not work —
switch it off (``listen=False`` on the relay) and rely on polling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["NotificationListener"]

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
        self.channel = channel
        self._event = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    async def start(self) -> None:
        self._conn = await self.engine.connect()
        raw = await self._conn.get_raw_connection()
        self._driver = raw.driver_connection
        await self._driver.add_listener(self.channel, self._on_notify)

    def _on_notify(self, *_args: Any) -> None:
        self._event.set()

    def wake(self) -> None:
        """Wake a waiter now (used for shutdown)."""
        self._event.set()

    async def wait(self, seconds: float) -> bool:
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
                await self._conn.close()
            self._conn = None
            self._driver = None
