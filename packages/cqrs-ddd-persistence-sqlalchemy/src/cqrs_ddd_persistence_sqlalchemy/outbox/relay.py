"""``OutboxRelay``: claims outbox batches, publishes them, acknowledges only confirmed ones.

Run as many relays as you like, in as many processes as you like: claims never overlap, a dead
relay's batch comes back when its lease expires, and every acknowledgement is fenced by the
lease token. Delivery is at-least-once; duplicates only happen for a batch whose relay died (or
lost its lease) between the broker's confirm and the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cqrs_ddd_core.errors import ConfigurationError, MissingSchemaError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_core.ports.publisher import IMessagePublisher
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import (
    fencing_refused,
    lease_lost,
    outbox_published,
)
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import (
    TRACE_KEYS,
    db_attributes,
    links_to,
    span,
    stored_context,
    trace_metadata,
    tracer_for,
)
from cqrs_ddd_persistence_sqlalchemy.outbox.messages import OutboxClaim
from cqrs_ddd_persistence_sqlalchemy.outbox.metrics import RelayMetrics
from cqrs_ddd_persistence_sqlalchemy.outbox.storage import SQLAlchemyOutboxStorage
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff
from cqrs_ddd_persistence_sqlalchemy.workers import WorkerLifecycle

__all__ = ["OutboxRelay", "RelayMetrics"]

logger = logging.getLogger(__name__)

_FATAL = (ConfigurationError, MissingSchemaError)


class OutboxRelay(WorkerLifecycle):
    """Publish the outbox through an :class:`~cqrs_ddd_core.ports.IMessagePublisher`.

    Args:
        outbox: the storage to drain (its ``lease_seconds``, ``max_attempts``, ``backoff`` and
            ``ordered_by_key`` apply).
        publisher: returns once the broker confirmed, raises on refusal.
        batch_size: messages claimed per statement.
        poll_interval: seconds between polls when idle.
        listen: on PostgreSQL, wake on ``NOTIFY`` from ``save_messages`` (polling stays as
            the fallback); switch off behind PgBouncer (transaction pooling).
        publish_timeout: a publish that has not been confirmed after this many seconds
            counts as failed (retried with backoff).
        max_in_flight: concurrent publishes within a batch (default: the whole batch). With
            ``ordered_by_key`` a batch holds at most one message per key, so this never
            reorders a key.
        stats_interval: seconds between refreshes of ``metrics.pending`` / ``lag_seconds``.

    Example::

        outbox = SQLAlchemyOutboxStorage(engine, ordered_by_key=True)
        async with RabbitMQPublisher(url, exchange="events") as publisher:
            relay = OutboxRelay(outbox, publisher, batch_size=100)
            task = asyncio.create_task(relay.run())
            ...
            await relay.stop()    # finishes the in-flight batch; returns once run() has
            await task
    """

    def __init__(
        self,
        outbox: SQLAlchemyOutboxStorage,
        publisher: IMessagePublisher,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        listen: bool = True,
        publish_timeout: float = 30.0,
        max_in_flight: int | None = None,
        stats_interval: float = 5.0,
        error_backoff: Backoff | None = None,
        name: str = "outbox-relay",
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be >= 1")
        super().__init__()
        self.outbox = outbox
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.listen = listen
        self.publish_timeout = publish_timeout
        self.max_in_flight = max_in_flight or batch_size
        self.stats_interval = stats_interval
        self.error_backoff = error_backoff or Backoff(base=0.5, maximum=30.0)
        self.name = name
        self.metrics = RelayMetrics()
        self._last_stats = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Relay until :meth:`stop` (the batch in flight is finished, not lost) or
        cancellation (the batch in flight is released)."""
        async with self.running():
            listener = await self._start_listener()
            try:
                await self._relay(listener)
            finally:
                if listener is not None:
                    await listener.close()

    async def _relay(self, listener: Any) -> None:
        failures = 0
        while not self.stopping:
            try:
                # One connection per relay, held across batches (no checkout per statement);
                # re-pinned after a failure.
                async with self.outbox.queue.pinned():
                    while not self.stopping:
                        claimed = await self.run_once()
                        await self._maybe_refresh_stats()
                        failures = 0
                        if claimed < self.batch_size:
                            await self._sleep(self.poll_interval, listener)
            except _FATAL:
                logger.exception("%s: cannot run, stopping", self.name)
                raise
            except Exception as exc:
                failures += 1
                self.metrics.errors += 1
                self.metrics.last_error = repr(exc)
                delay = self.error_backoff.seconds(failures)
                logger.exception("%s: batch failed, retrying in %.1fs", self.name, delay)
                await self._sleep(delay, listener)

    async def _start_listener(self) -> Any:
        engine = self.outbox.queue.engine
        if not self.listen or engine is None:
            return None
        listener = dialect_for(engine).listener(engine, self.outbox.channel)
        if listener is None:
            return None  # no LISTEN on this database / driver: polling only
        try:
            await listener.start()
        except Exception:
            logger.warning("%s: LISTEN unavailable, polling only", self.name, exc_info=True)
            return None
        return listener

    async def _sleep(self, seconds: float, listener: Any) -> None:
        """Until a NOTIFY arrives, :meth:`stop` is called, or ``seconds`` pass."""
        if listener is None:
            await self.sleep(seconds)
            return
        waits = [
            asyncio.ensure_future(self.sleep(seconds)),
            asyncio.ensure_future(listener.wait(seconds)),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _maybe_refresh_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats >= self.stats_interval:
            self._last_stats = now
            await self.refresh_stats()

    async def refresh_stats(self) -> None:
        """Read the outbox state into ``metrics.pending`` and ``metrics.lag_seconds``."""
        stats = await self.outbox.stats()
        self.metrics.pending = stats.pending
        self.metrics.lag_seconds = stats.lag_seconds

    # -- one batch -------------------------------------------------------------------------------
    async def run_once(self) -> int:
        """Claim one batch, publish it, settle it. Returns the number of messages claimed."""
        claimed = await self.outbox.claim(self.batch_size)
        if not claimed:
            return 0
        self.metrics.claimed += len(claimed)
        self.metrics.batches += 1
        confirmed: list[OutboxClaim] = []
        failed: list[tuple[OutboxClaim, BaseException]] = []
        keepalive = asyncio.create_task(self._keep_alive(claimed))
        try:
            await self._publish(claimed, confirmed, failed)
        except asyncio.CancelledError:
            # Shutdown by cancellation: keep what the broker confirmed, give back the rest.
            done = {c.claim.id for c in confirmed}
            rest = [c for c in claimed if c.claim.id not in done]
            await asyncio.shield(self._settle_on_cancel(confirmed, rest))
            raise
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keepalive
        await self._settle(confirmed, failed)
        return len(claimed)

    async def _publish(
        self,
        claimed: Sequence[OutboxClaim],
        confirmed: list[OutboxClaim],
        failed: list[tuple[OutboxClaim, BaseException]],
    ) -> None:
        engine = self.outbox.queue.binding.engine
        traced = tracer_for(engine) is not None
        system = getattr(self.publisher, "messaging_system", type(self.publisher).__name__)

        async def one(item: OutboxClaim) -> None:
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.publish_timeout):
                    if traced:
                        await self._publish_traced(item.message, engine, system)
                    else:
                        await self.publisher.publish(item.message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a refusal is an outcome, settled below
                failed.append((item, exc))
            else:
                outbox_published(time.monotonic() - started, system)
                confirmed.append(item)

        if self.max_in_flight == 1:
            for item in claimed:  # no task per message
                await one(item)
            return
        limit = asyncio.Semaphore(self.max_in_flight)

        async def limited(item: OutboxClaim) -> None:
            async with limit:
                await one(item)

        await asyncio.gather(*(limited(item) for item in claimed))

    async def _publish_traced(self, message: OutboxMessage, engine: Any, system: str) -> None:
        """Publish under a producer span continuing the trace stored with the message; the
        broker carries that span's context (``traceparent`` header) to the consumers."""
        attributes = {
            "messaging.system": system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": message.event_type,
            "messaging.message.id": message.message_id,
        }
        parent = stored_context(message.metadata)
        with span(
            f"send {message.event_type}", attributes, engine=engine, kind="producer", context=parent
        ):
            own = {k: v for k, v in message.metadata.items() if k not in TRACE_KEYS}
            carried = trace_metadata(own)
            await self.publisher.publish(
                message if carried is None else replace(message, metadata=carried)
            )

    async def _keep_alive(self, claimed: Sequence[OutboxClaim]) -> None:
        # A batch that publishes slowly must not lose its lease to another relay.
        interval = self.outbox.queue.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            with self.outbox.queue.unpinned():  # the batch's task owns the pinned connection
                outcome = await self.outbox.heartbeat(claimed)
            if outcome.lost:
                lease_lost("outbox", len(outcome.lost))
                logger.warning("%s: lease lost for %d message(s)", self.name, len(outcome.lost))

    async def _settle(
        self,
        confirmed: Sequence[OutboxClaim],
        failed: Sequence[tuple[OutboxClaim, BaseException]],
    ) -> None:
        engine = self.outbox.queue.binding.engine
        if tracer_for(engine) is None:
            await self._settle_batch(confirmed, failed)
            return
        # One settle serves the traces of every message in the batch: linked, not parented.
        links = links_to(
            [c.message.metadata for c in confirmed] + [c.message.metadata for c, _ in failed]
        )
        attributes = {
            **db_attributes(engine, "settle", self.outbox.table.name),
            "messaging.operation.type": "settle",
            "messaging.batch.message_count": len(confirmed) + len(failed),
        }
        with span(
            f"settle {self.outbox.table.name}",
            attributes,
            engine=engine,
            kind="client",
            links=links,
        ):
            await self._settle_batch(confirmed, failed)

    async def _settle_batch(
        self,
        confirmed: Sequence[OutboxClaim],
        failed: Sequence[tuple[OutboxClaim, BaseException]],
    ) -> None:
        if confirmed:
            outcome = await self.outbox.complete(confirmed)
            self.metrics.published += len(outcome.done)
            if outcome.lost:
                self.metrics.lost += len(outcome.lost)
                fencing_refused("outbox", len(outcome.lost))
                logger.warning(
                    "%s: %d published message(s) had lost their lease (another relay may "
                    "publish them again)",
                    self.name,
                    len(outcome.lost),
                )
        by_error: dict[str, list[OutboxClaim]] = {}
        for item, exc in failed:
            text = f"{type(exc).__name__}: {exc}"[:2000]
            by_error.setdefault(text, []).append(item)
        for text, items in by_error.items():
            outcome = await self.outbox.fail(items, error=text)
            self.metrics.failed += len(items)
            self.metrics.dead += len(outcome.dead)
            self.metrics.lost += len(outcome.lost)
            fencing_refused("outbox", len(outcome.lost))
            self.metrics.last_error = text
            logger.warning(
                "%s: %d message(s) failed (%s): %d retry later, %d dead-lettered",
                self.name,
                len(items),
                text,
                len(outcome.retried),
                len(outcome.dead),
            )

    async def _settle_on_cancel(
        self, confirmed: Sequence[OutboxClaim], rest: Sequence[OutboxClaim]
    ) -> None:
        try:
            with self.outbox.queue.unpinned():  # the pinned connection is being given back
                await self._settle_released(confirmed, rest)
        except Exception:  # the leases expire anyway; nothing is lost
            logger.exception("%s: could not settle the cancelled batch", self.name)

    async def _settle_released(
        self, confirmed: Sequence[OutboxClaim], rest: Sequence[OutboxClaim]
    ) -> None:
        if confirmed:
            self.metrics.published += len((await self.outbox.complete(confirmed)).done)
        if rest:
            self.metrics.released += len((await self.outbox.release(rest)).released)
