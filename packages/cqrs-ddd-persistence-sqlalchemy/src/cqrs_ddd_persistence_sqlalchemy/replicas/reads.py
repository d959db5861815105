"""A query-side read on a replica: the runner and the ORM session the bind hands out
(:meth:`~cqrs_ddd_persistence_sqlalchemy.binding.Binding.reading` /
:meth:`~cqrs_ddd_persistence_sqlalchemy.binding.Binding.read_session`).

A replica found gone (its connection cannot be opened, or a statement finds it lost) is marked
down and the read runs again on the primary: statements (:class:`ReplicaRunner`) and whole ORM
reads (:func:`replica_read`, the repository's ``get`` / ``get_many`` / ``exists``). A session
handed out for a read the caller drives itself (:func:`replica_session`, the repository's
``search``) moves to the primary only when its connection cannot be opened; lost later, it raises
``ConnectionLostError`` (retryable) like any lost connection, and the replica is skipped from
then on until a check finds it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.base import Executable

from cqrs_ddd_core.errors import ConnectionLostError
from cqrs_ddd_persistence_sqlalchemy.errors import translating
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import (
    Execution,
    Params,
    StatementRunner,
)
from cqrs_ddd_persistence_sqlalchemy.replicas.routing import Replica, ReplicaSet

__all__ = ["ReplicaRunner", "replica_read", "replica_reading", "replica_session"]

T = TypeVar("T")


class ReplicaRunner:
    """Runs a read's statements on a replica; once it finds the replica gone, on the primary."""

    __slots__ = ("_primary", "_replica", "_replicas")

    def __init__(self, replicas: ReplicaSet, replica: Replica, primary: Execution) -> None:
        self._replicas = replicas
        self._replica: Replica | None = replica
        self._primary = primary

    @property
    def dialect(self) -> Dialect:
        return self._primary.dialect

    async def _run(self, method: str, statement: Executable, params: Params) -> Any:
        replica = self._replica
        if replica is not None:
            try:
                return await getattr(replica.execution, method)(statement, params)
            except Exception as exc:
                if not self._replicas.lost(replica, exc):
                    raise
                self._replica = None
        return await getattr(self._primary, method)(statement, params)

    async def fetch(self, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self._run("fetch", statement, params)
        return rows

    async def fetch_mappings(
        self, statement: Executable, params: Params = None
    ) -> Sequence[Mapping[str, Any]]:
        rows: Sequence[Mapping[str, Any]] = await self._run("fetch_mappings", statement, params)
        return rows

    async def execute(self, statement: Executable, params: Params = None) -> int:
        count: int = await self._run("execute", statement, params)
        return count


@asynccontextmanager
async def replica_reading(
    replicas: ReplicaSet, primary: Execution
) -> AsyncIterator[StatementRunner]:
    """The runner of one read: a replica's (see :meth:`ReplicaSet.choose`), else ``primary``."""
    replica = await replicas.choose()
    yield primary if replica is None else ReplicaRunner(replicas, replica, primary)


@asynccontextmanager
async def replica_session(
    replicas: ReplicaSet, on_primary: Callable[[], AbstractAsyncContextManager[AsyncSession]]
) -> AsyncIterator[AsyncSession]:
    """The session of one ORM read: on a replica (closed without a commit), else the
    primary's session ``on_primary()`` gives."""
    replica = await replicas.choose()
    with translating():
        session = await replicas.session(replica) if replica is not None else None
    if session is None:
        async with on_primary() as primary_session:
            yield primary_session
        return
    with translating():
        async with session:
            yield session


async def replica_read(
    replicas: ReplicaSet,
    read: Callable[[AsyncSession], Awaitable[T]],
    on_primary: Callable[[], AbstractAsyncContextManager[AsyncSession]],
) -> T:
    """``read(session)`` on a replica's session; again on the primary's if the replica is
    found gone."""
    replica = await replicas.choose()
    if replica is not None:
        with translating():
            session = await replicas.session(replica)
        if session is not None:
            try:
                with translating():
                    async with session:
                        return await read(session)
            except ConnectionLostError as exc:
                replicas.lost(replica, exc)
    async with on_primary() as primary_session:
        return await read(primary_session)
