"""The in-memory inbox passes the shipped inbox contract; the port's key rule."""

from __future__ import annotations

import pytest

from cqrs_ddd_core.adapters.memory import InMemoryInbox, InMemoryUnitOfWork
from cqrs_ddd_core.errors import DataError
from cqrs_ddd_core.ports import IInbox
from cqrs_ddd_core.ports.inbox import check_inbox_key
from cqrs_ddd_core.testing import InboxContract, InboxHarness, ManualClock


class TestInMemoryInbox(InboxContract):
    @pytest.fixture
    def harness(self) -> InboxHarness:
        clock = ManualClock()
        return InboxHarness(InMemoryInbox(clock=clock), InMemoryUnitOfWork, clock)


def test_inbox_memory_satisfies_the_port() -> None:
    assert isinstance(InMemoryInbox(), IInbox)


def test_inbox_key_rule_names_the_bad_part() -> None:
    check_inbox_key("billing", "m-1")
    with pytest.raises(DataError, match="message_id is 300 characters"):
        check_inbox_key("billing", "x" * 300)
    with pytest.raises(DataError, match="consumer must be a non-empty string"):
        check_inbox_key(None, "m-1")  # type: ignore[arg-type]


async def test_inbox_memory_uow_reused_after_rollback_records_again() -> None:
    inbox = InMemoryInbox()
    async with InMemoryUnitOfWork() as uow:
        assert await inbox.record("c", "m", uow=uow) is True
        await uow.rollback()
        assert await inbox.record("c", "m", uow=uow) is True
        await uow.commit()
    assert await inbox.has_seen("c", "m") is True
