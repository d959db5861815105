"""Contract every ``IOutboxStorage`` adapter passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from cqrs_ddd_core.ports.outbox import OutboxMessage

__all__ = ["OutboxContract", "OutboxHarness"]


@dataclass
class OutboxHarness:
    outbox: Any
    new_uow: Callable[[], Any]
    #: The lease the outbox under test was configured with (kept short in tests).
    lease_seconds: float
    #: The longest first retry delay after ``mark_failed`` (backoff incl. jitter).
    backoff_seconds: float = 1.0
    #: Failed attempts after which the outbox dead-letters a message.
    max_attempts: int = 10


def _message(**kw: Any) -> OutboxMessage:
    return OutboxMessage(
        event_type="ContractOrderPlaced",
        payload={"order_id": uuid.uuid4().hex, "total": Decimal("1.5"), "at": datetime.now(UTC)},
        **kw,
    )


class OutboxContract:
    @pytest.fixture
    def harness(self) -> OutboxHarness:
        raise NotImplementedError("override the harness fixture")

    async def _save(self, h: OutboxHarness, messages: list[OutboxMessage]) -> None:
        async with h.new_uow() as uow:
            await h.outbox.save_messages(messages, uow=uow)
            await uow.commit()

    async def test_committed_messages_are_pending(self, harness: OutboxHarness) -> None:
        messages = [_message(correlation_id="c", tenant_id="t") for _ in range(3)]
        await self._save(harness, messages)
        pending = await harness.outbox.get_pending(limit=10)
        assert [m.message_id for m in pending] == [m.message_id for m in messages]
        first = pending[0]
        assert first.event_type == "ContractOrderPlaced"
        assert first.payload["total"] in (Decimal("1.5"), "1.5")
        assert (first.correlation_id, first.tenant_id) == ("c", "t")

    async def test_rolled_back_messages_never_appear(self, harness: OutboxHarness) -> None:
        async with harness.new_uow() as uow:
            await harness.outbox.save_messages([_message()], uow=uow)
            await uow.rollback()
        assert await harness.outbox.get_pending(limit=10) == []

    async def test_get_pending_leases_what_it_returns(self, harness: OutboxHarness) -> None:
        await self._save(harness, [_message() for _ in range(4)])
        first = await harness.outbox.get_pending(limit=2)
        second = await harness.outbox.get_pending(limit=10)
        assert len(first) == 2 and len(second) == 2
        assert not {m.message_id for m in first} & {m.message_id for m in second}
        assert await harness.outbox.get_pending(limit=10) == []

    async def test_concurrent_get_pending_never_share(self, harness: OutboxHarness) -> None:
        await self._save(harness, [_message() for _ in range(20)])
        batches = await asyncio.gather(*(harness.outbox.get_pending(limit=3) for _ in range(8)))
        ids = [m.message_id for batch in batches for m in batch]
        assert len(ids) == len(set(ids)) == 20

    async def test_published_messages_are_done(self, harness: OutboxHarness) -> None:
        await self._save(harness, [_message() for _ in range(2)])
        pending = await harness.outbox.get_pending(limit=10)
        await harness.outbox.mark_published([m.message_id for m in pending])
        await asyncio.sleep(harness.lease_seconds + 0.2)
        assert await harness.outbox.get_pending(limit=10) == []

    async def test_unacknowledged_lease_expires(self, harness: OutboxHarness) -> None:
        [message] = [_message()]
        await self._save(harness, [message])
        assert [m.message_id for m in await harness.outbox.get_pending()] == [message.message_id]
        await asyncio.sleep(harness.lease_seconds + 0.2)
        again = await harness.outbox.get_pending()
        assert [m.message_id for m in again] == [message.message_id]

    async def test_failed_message_backs_off_and_counts(self, harness: OutboxHarness) -> None:
        await self._save(harness, [_message()])
        [claimed] = await harness.outbox.get_pending()
        await harness.outbox.mark_failed(claimed.message_id, "broker down")
        assert await harness.outbox.get_pending() == []  # not immediately

    async def test_failed_message_comes_back_after_backoff(self, harness: OutboxHarness) -> None:
        await self._save(harness, [_message()])
        [claimed] = await harness.outbox.get_pending()
        await harness.outbox.mark_failed(claimed.message_id, "broker down")
        assert await harness.outbox.get_pending() == []
        await asyncio.sleep(harness.backoff_seconds + 0.3)
        [again] = await harness.outbox.get_pending()
        assert again.message_id == claimed.message_id
        assert again.retry_count == 1 and again.error == "broker down"

    async def test_dead_letters_after_max_attempts_and_requeue(
        self, harness: OutboxHarness
    ) -> None:
        outbox = harness.outbox
        if not (hasattr(outbox, "dead_letters") and hasattr(outbox, "requeue")):
            pytest.skip("outbox has no dead-letter view")
        poison, fine = _message(), _message()
        await self._save(harness, [poison, fine])
        for attempt in range(harness.max_attempts):
            await outbox.mark_failed(poison.message_id, f"refused #{attempt}")
        [dead] = await outbox.dead_letters()
        assert dead.message_id == poison.message_id
        assert dead.retry_count == harness.max_attempts
        assert dead.error == f"refused #{harness.max_attempts - 1}"
        assert [m.message_id for m in await outbox.get_pending()] == [fine.message_id]
        assert await outbox.requeue([poison.message_id]) == 1
        assert await outbox.dead_letters() == []
        assert [m.message_id for m in await outbox.get_pending()] == [poison.message_id]

    async def test_ambient_unit_of_work_rolls_back(self, harness: OutboxHarness) -> None:
        async with harness.new_uow():
            await harness.outbox.save_messages([_message()])
        assert await harness.outbox.get_pending(limit=10) == []

    async def test_same_message_id_is_stored_once(self, harness: OutboxHarness) -> None:
        message = _message()
        await self._save(harness, [message])
        await self._save(harness, [message])
        assert [m.message_id for m in await harness.outbox.get_pending(limit=10)] == [
            message.message_id
        ]

    async def test_publishing_is_idempotent_per_loop(self, harness: OutboxHarness) -> None:
        """The seed's loop, run by several copies at once, publishes every message once."""
        messages = [_message() for _ in range(30)]
        await self._save(harness, messages)
        published: list[str] = []

        async def loop() -> None:
            while batch := await harness.outbox.get_pending(limit=4):
                for m in batch:
                    published.append(m.message_id)
                    await asyncio.sleep(0)
                    await harness.outbox.mark_published([m.message_id])

        await asyncio.gather(*(loop() for _ in range(4)))
        assert sorted(published) == sorted(m.message_id for m in messages)
