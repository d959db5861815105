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
