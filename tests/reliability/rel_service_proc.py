"""Service processes for the SIGKILL tests: one of relay / worker / runner of a
:class:`~tests.reliability.rel_world.World`, running until it is killed.

Processes are forked from a ``forkserver`` that has the library imported already, so a new
service process is up in well under a second (a fresh interpreter takes seconds on a busy
2-core machine). The relay publishes to a file: a message counts as confirmed once its id line
is written (what survives a SIGKILL is what the broker has).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from multiprocessing.context import ForkServerContext
from typing import Any

from cqrs_ddd_core.ports.outbox import OutboxMessage

PRELOAD = ["tests.reliability.rel_world", "tests.reliability.rel_service_proc"]


class FilePublisher:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.delay = 0.0

    async def publish(self, message: OutboxMessage) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        os.write(self.fd, f"{message.message_id}\n".encode())  # one write: an atomic line


async def _serve(url: str, schema: str, service: str, delivery: str, ready: Any) -> None:
    from tests.reliability.rel_world import World

    world = World(url, schema, slow=0.02)
    world.publisher = FilePublisher(delivery)  # type: ignore[assignment]
    world.start(only=(service,))
    ready.put(service)
    await asyncio.gather(*world.tasks.values())


def serve(url: str, schema: str, service: str, delivery: str, ready: Any) -> None:
    """Process entry point."""
    asyncio.run(_serve(url, schema, service, delivery, ready))


def context() -> ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


async def _write_sqlite(path: str, first: int, acks: str, ready: Any) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from cqrs_ddd_core.ports.event_store import StoredEvent
    from cqrs_ddd_persistence_sqlalchemy import create_engine
    from cqrs_ddd_persistence_sqlalchemy.core import (
        SQLAlchemyEventStore,
        SQLAlchemyOutboxStorage,
        SQLAlchemyUnitOfWork,
    )

    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    factory = async_sessionmaker(engine, expire_on_commit=False)
    events = SQLAlchemyEventStore(factory, listen=False)
    outbox = SQLAlchemyOutboxStorage(factory)
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    ready.put("writer")
    k = first
    while True:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await events.append(
                [
                    StoredEvent(event_type="Tick", aggregate_id=f"s{k % 4}", event_id=f"e-{k}-{i}")
                    for i in range(3)
                ],
                uow=uow,
            )
            await outbox.save_messages(
                [OutboxMessage(event_type="Tick", message_id=f"m-{k}-{i}") for i in range(3)],
                uow=uow,
            )
            await uow.commit()
        os.write(fd, f"{k}\n".encode())  # acknowledged only after the commit returned
        k += 1


def write_sqlite(path: str, first: int, acks: str, ready: Any) -> None:
    """Process entry point: commit batches to a SQLite file until killed."""
    asyncio.run(_write_sqlite(path, first, acks, ready))
