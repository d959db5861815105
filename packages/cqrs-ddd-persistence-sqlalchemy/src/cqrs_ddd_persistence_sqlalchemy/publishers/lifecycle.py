"""The connect/close lifecycle the broker publishers share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["ConnectedPublisher"]


class ConnectedPublisher(ABC):
    """A publisher holding a broker connection: ``async with publisher:`` connects and closes."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the broker connection (idempotent)."""

    @abstractmethod
    async def close(self) -> None:
        """Close what :meth:`connect` opened."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
