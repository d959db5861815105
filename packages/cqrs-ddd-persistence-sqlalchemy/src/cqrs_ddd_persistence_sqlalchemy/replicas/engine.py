"""The engine ``create_engine(primary_url, replicas=[...])`` returns: the primary's
``AsyncEngine``, which also disposes the replicas' engines it made."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.replicas.routing import ReplicaSet

__all__ = ["RoutedEngine"]


class RoutedEngine(AsyncEngine):
    """The primary's engine, usable wherever an ``AsyncEngine`` is (units of work, stores,
    workers, ``metadata.create_all``); stores built on it send query-side reads to
    :attr:`replicas`. :meth:`dispose` disposes the replicas' engines too."""

    __slots__ = ("replicas",)

    replicas: ReplicaSet

    async def dispose(self, close: bool = True) -> None:
        try:
            await self.replicas.dispose()
        finally:
            await super().dispose(close)
