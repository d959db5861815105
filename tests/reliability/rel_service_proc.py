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
