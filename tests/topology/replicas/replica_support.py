"""Helpers of the read-replica tests: which server served a read, and a small domain."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import MetaData, String, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.replicas import ReplicaSet

PROBE = text("SELECT pg_is_in_recovery()")
T = TypeVar("T")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class NoteModel(VersionMixin, Base):
    __tablename__ = "replica_notes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[str] = mapped_column(String(200))


class Note(AggregateRoot[str]):
    id: str
    body: str


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def read_served_by_standby(bind: Any) -> bool:
    """Whether a query-side read (statements) of a store built on ``bind`` runs on a standby."""
    async with Binding(bind).reading() as runner:
        return bool((await runner.fetch(PROBE))[0][0])


async def orm_read_served_by_standby(bind: Any) -> bool:
    """Whether a query-side ORM read (the repository's) of a store on ``bind`` runs on a
    standby."""
    async with Binding(bind).read_session() as session:
        return bool((await session.execute(PROBE)).scalar())


async def until_usable(replicas: ReplicaSet) -> None:
    """Check until the set finds its standby usable again (a check compares with the primary's
    WAL at that moment: WAL written meanwhile by the server itself is replayed a moment later)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        await replicas.check()
        if all(r.usable for r in replicas.replicas):
            return
        assert asyncio.get_running_loop().time() < deadline, "the standby stays unusable"
        await asyncio.sleep(0.05)


async def elsewhere(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in a context of its own (another request): it carries no commit position
    of this one, and what it commits does not make this context's reads wait for it."""
    return await asyncio.create_task(_call(work), context=contextvars.Context())


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
