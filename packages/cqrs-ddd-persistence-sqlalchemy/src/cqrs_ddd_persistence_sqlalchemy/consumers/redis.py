"""Redis Streams consumer loop with the inbox (consumer group, ``XACK`` after commit).

Requires the ``redis`` extra.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from cqrs_ddd_core.ports.inbox import IInbox
from cqrs_ddd_persistence_sqlalchemy.consumers.base import (
    Handler,
    InboxConsumer,
    Outcome,
    ReceivedMessage,
    decode_headers,
)
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["RedisStreamInboxConsumer", "received_from_entry"]


def received_from_entry(stream: str, entry_id: Any, fields: Any) -> ReceivedMessage:
    """A :class:`ReceivedMessage` from a stream entry written by ``RedisStreamPublisher``."""
    headers = decode_headers(fields)
    position = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    raw_fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    body = raw_fields.get("payload", b"")
    headers.pop("payload", None)
    return ReceivedMessage(
        message_id=headers.get("message_id") or f"{stream}/{position}",
        event_type=headers.get("event_type", ""),
        body=body if isinstance(body, bytes) else str(body).encode(),
        headers=headers,
        source=stream,
        position=position,
        raw=fields,
    )


class RedisStreamInboxConsumer(InboxConsumer):
    """Reads a stream as a member of a consumer group and handles each entry exactly once.

    Entries are handled one at a time, in stream order, and ``XACK``-ed after their unit of
    work committed. At start, and after a failure, the member first re-reads its own pending
    entries (delivered, not acknowledged: a crash or a failed handler), so a restarted member
    with the same ``member`` name resumes where it stopped; entries left pending by members
    that are gone are taken over with ``XAUTOCLAIM`` once idle for ``claim_idle`` seconds.
    Entries already handled are skipped by the inbox.

    Args:
        handler: ``await handler(message, uow)`` (see :class:`InboxConsumer`).
        stream: stream key.
        group: consumer group (created at ``start_id`` if missing); also the inbox
            ``consumer`` name unless given.
        uow_factory: a new ``SQLAlchemyUnitOfWork`` per entry.
        member: this process's name in the group (default ``host-pid``; give a stable one
            so that a restart picks up its own pending entries at once).
        claim_idle: seconds after which another member's pending entry is claimed (``None``:
            never).

    Example::

        consumer = RedisStreamInboxConsumer(
            on_order_placed, stream="events", group="billing", member="billing-1",
            uow_factory=lambda: SQLAlchemyUnitOfWork(session_factory),
        )
        await consumer.run()        # until consumer.stop()
    """

    messaging_system = "redis"

    def __init__(
        self,
        handler: Handler,
        *,
        stream: str,
        group: str,
        uow_factory: Callable[[], SQLAlchemyUnitOfWork],
        url: str = "redis://127.0.0.1:6379/0",
        client: Redis | None = None,
        member: str | None = None,
        consumer: str | None = None,
        inbox: IInbox | None = None,
        start_id: str = "0",
        batch_size: int = 100,
        poll_timeout: float = 1.0,
        claim_idle: float | None = 60.0,
        error_backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            handler,
            consumer=consumer or group,
            uow_factory=uow_factory,
            inbox=inbox,
            error_backoff=error_backoff,
            name=name,
        )
        self._owns_client = client is None
        self.client: Redis = client if client is not None else Redis.from_url(url)
        self.stream = stream
        self.group = group
        self.member = member or f"{socket.gethostname()}-{os.getpid()}"
        self.start_id = start_id
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.claim_idle = claim_idle
        self._backlog = True  # own pending entries first
        self._last_claim = 0.0
        self._failures = 0

    async def _run(self) -> None:
        """Consume until :meth:`stop` (the entry in flight is finished and acknowledged)."""
        try:
            await self._ensure_group()
            failures = 0
            while not self.stopping:
                try:
                    for entry_id, fields in await self._next_entries():
                        if not await self._handle(entry_id, fields) or self.stopping:
                            break
                    failures = 0
                except RedisError as exc:
                    # An entry handled but not acked stays pending: re-read and skipped.
                    self._backlog = True
                    failures += 1
                    await self.sleep(self.loop_error(exc, failures))
        finally:
            if self._owns_client:
                await self.client.aclose()

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, self.start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _next_entries(self) -> list[tuple[Any, Any]]:
        if self._backlog:
            entries = await self._read("0", block=None)
            if entries:
                return entries
            self._backlog = False
        if self.claim_idle is not None and time.monotonic() - self._last_claim > self.claim_idle:
            self._last_claim = time.monotonic()
            reply: Any = await self.client.xautoclaim(
                self.stream,
                self.group,
                self.member,
                min_idle_time=int(self.claim_idle * 1000),
                start_id="0-0",
                count=self.batch_size,
            )
            claimed = [(i, f) for i, f in reply[1] if f]  # entries trimmed meanwhile: no fields
            if claimed:
                self._backlog = True  # they are in our pending list now, in order
                return claimed
        return await self._read(">", block=int(self.poll_timeout * 1000))

    async def _read(self, start: str, *, block: int | None) -> list[tuple[Any, Any]]:
        reply: Any = await self.client.xreadgroup(
            self.group, self.member, {self.stream: start}, count=self.batch_size, block=block
        )
        return [(i, f) for _stream, entries in reply or [] for i, f in entries if f]

    async def _handle(self, entry_id: Any, fields: Any) -> bool:
        outcome = await self.process(received_from_entry(self.stream, entry_id, fields))
        if outcome is Outcome.FAILED:
            # Left pending; re-read from our pending list after the pause, in order.
            self._failures += 1
            self._backlog = True
            await self.sleep(self.error_backoff.seconds(self._failures))
            return False
        self._failures = 0
        await self.client.xack(self.stream, self.group, entry_id)
        self.metrics.acked += 1
        return True
