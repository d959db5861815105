"""Contract every ``IInbox`` adapter passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cqrs_ddd_core.errors import ConcurrencyError, DataError, UnitOfWorkError

__all__ = ["InboxContract", "InboxHarness", "ManualClock"]


class ManualClock:
    """A clock that stands still until :meth:`advance` (pass it as the inbox's ``clock=``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class InboxHarness:
    inbox: Any
    new_uow: Callable[[], Any]
    #: The clock the inbox under test was built with.
    clock: ManualClock


def _id() -> str:
    return uuid.uuid4().hex


class InboxContract:
    @pytest.fixture
    def harness(self) -> InboxHarness:
        raise NotImplementedError("override the harness fixture")

    async def _record(self, h: InboxHarness, consumer: str, message_id: str) -> bool:
        async with h.new_uow() as uow:
            first: bool = await h.inbox.record(consumer, message_id, uow=uow)
            await uow.commit()
        return first

    async def test_first_record_is_new_then_seen(self, harness: InboxHarness) -> None:
        mid = _id()
        assert await harness.inbox.has_seen("billing", mid) is False
        assert await self._record(harness, "billing", mid) is True
        assert await harness.inbox.has_seen("billing", mid) is True
        assert await self._record(harness, "billing", mid) is False

    async def test_rolled_back_record_is_forgotten(self, harness: InboxHarness) -> None:
        mid = _id()
        async with harness.new_uow() as uow:
            assert await harness.inbox.record("billing", mid, uow=uow) is True
            await uow.rollback()
        assert await harness.inbox.has_seen("billing", mid) is False
        assert await self._record(harness, "billing", mid) is True

    async def test_record_left_uncommitted_is_forgotten(self, harness: InboxHarness) -> None:
        mid = _id()
        async with harness.new_uow() as uow:
            assert await harness.inbox.record("billing", mid, uow=uow) is True
        assert await self._record(harness, "billing", mid) is True

    async def test_records_are_per_consumer(self, harness: InboxHarness) -> None:
        mid = _id()
        assert await self._record(harness, "billing", mid) is True
        assert await self._record(harness, "shipping", mid) is True
        assert await self._record(harness, "shipping", mid) is False

    async def test_second_record_in_one_uow_is_seen(self, harness: InboxHarness) -> None:
        mid = _id()
        async with harness.new_uow() as uow:
            assert await harness.inbox.record("billing", mid, uow=uow) is True
            assert await harness.inbox.record("billing", mid, uow=uow) is False
            await uow.commit()
        assert await harness.inbox.has_seen("billing", mid) is True

    async def test_uncommitted_record_is_seen_only_inside(self, harness: InboxHarness) -> None:
        mid = _id()
        async with harness.new_uow() as uow:
            await harness.inbox.record("billing", mid, uow=uow)
            assert await harness.inbox.has_seen("billing", mid) is True  # the ambient uow
            await uow.rollback()
        assert await harness.inbox.has_seen("billing", mid) is False

    async def test_ambient_unit_of_work_is_joined(self, harness: InboxHarness) -> None:
        mid = _id()
        async with harness.new_uow():
            assert await harness.inbox.record("billing", mid) is True
        assert await harness.inbox.has_seen("billing", mid) is False  # rolled back on exit

    async def test_record_outside_a_unit_of_work_is_refused(self, harness: InboxHarness) -> None:
        with pytest.raises(UnitOfWorkError):
            await harness.inbox.record("billing", _id())

    @pytest.mark.parametrize(
        ("consumer", "message_id"), [("", "m"), ("c", ""), ("c", "x" * 256), ("c" * 256, "m")]
    )
    async def test_empty_or_overlong_keys_are_refused(
        self, harness: InboxHarness, consumer: str, message_id: str
    ) -> None:
        async with harness.new_uow() as uow:
            with pytest.raises(DataError):
                await harness.inbox.record(consumer, message_id, uow=uow)

    async def test_longest_key_is_stored(self, harness: InboxHarness) -> None:
        consumer, mid = "c" * 255, "é" * 255
        assert await self._record(harness, consumer, mid) is True
        assert await self._record(harness, consumer, mid) is False

    async def test_concurrent_units_of_work_commit_the_record_once(
        self, harness: InboxHarness
    ) -> None:
        mid = _id()
        committed_first: list[int] = []

        async def handle(n: int) -> None:
            try:
                async with harness.new_uow() as uow:
                    first = await harness.inbox.record("billing", mid, uow=uow)
                    await asyncio.sleep(0.05)  # the "handler": others arrive meanwhile
                    await uow.commit()
            except ConcurrencyError:
                return  # lost the race at commit: nothing of it was applied
            if first:
                committed_first.append(n)

        await asyncio.gather(*(handle(n) for n in range(5)))
        assert len(committed_first) == 1
        assert await harness.inbox.has_seen("billing", mid) is True

    async def test_purge_forgets_old_records_only(self, harness: InboxHarness) -> None:
        old, old_other, fresh = _id(), _id(), _id()
        await self._record(harness, "billing", old)
        await self._record(harness, "shipping", old_other)
        harness.clock.advance(timedelta(days=8))
        await self._record(harness, "billing", fresh)
        assert await harness.inbox.purge(timedelta(days=7), consumer="billing") == 1
        assert await harness.inbox.has_seen("billing", old) is False
        assert await harness.inbox.has_seen("shipping", old_other) is True
        assert await harness.inbox.has_seen("billing", fresh) is True
        assert await harness.inbox.purge(timedelta(days=7)) == 1
        assert await harness.inbox.has_seen("shipping", old_other) is False
        assert await harness.inbox.purge(timedelta(days=7)) == 0
        # A purged id is new again: keep records longer than redeliveries can arrive.
        assert await self._record(harness, "billing", old) is True
