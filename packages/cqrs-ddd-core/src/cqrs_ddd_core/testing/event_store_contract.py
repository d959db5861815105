"""Contract every ``IEventStore`` adapter passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from cqrs_ddd_core.errors import WrongExpectedVersionError
from cqrs_ddd_core.ports.event_store import StoredEvent, StreamState

__all__ = ["EventStoreContract", "EventStoreHarness", "read_all_until"]


@dataclass
class EventStoreHarness:
    store: Any
    #: Returns a fresh unit of work the store can join, or None if the store has none.
    new_uow: Callable[[], Any] | None = None


def _event(stream: str, n: int = 0, **kw: Any) -> StoredEvent:
    return StoredEvent(
        event_type="ContractOrderPlaced",
        aggregate_id=stream,
        aggregate_type="ContractOrder",
        payload={"customer_id": f"c{n}", "total": str(Decimal(n) / 4)},
        **kw,
    )


async def read_all_until(
    store: Any, wanted: set[str], *, after: str | None = None, limit: int = 100, wait_s: float = 15
) -> tuple[list[StoredEvent], str | None]:
    """Page ``read_all`` until every id in ``wanted`` was seen.

    Committed events may become visible to global readers a little later than to stream reads
    (a commit-safe log holds them back while an older transaction is still open), so an empty
    page is retried until ``timeout``.
    """
    seen: list[StoredEvent] = []
    cursor = after
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        page, cursor = await store.read_all(after=cursor, limit=limit)
        assert len(page) <= limit
        seen += page
        if wanted <= {e.event_id for e in seen}:
            return seen, cursor
        if not page:
            if asyncio.get_running_loop().time() > deadline:
                return seen, cursor
            await asyncio.sleep(0.02)


def _stream() -> str:
    return f"order-{uuid.uuid4().hex}"


class EventStoreContract:
    @pytest.fixture
    def harness(self) -> EventStoreHarness:
        raise NotImplementedError("override the harness fixture")

    async def test_append_assigns_versions_and_positions(self, harness: EventStoreHarness) -> None:
        stream = _stream()
        stored = await harness.store.append([_event(stream, i) for i in range(3)])
        assert [e.version for e in stored] == [1, 2, 3]
        positions = [e.position for e in stored]
        assert all(p is not None for p in positions)
        assert positions == sorted(positions)
        assert await harness.store.get_version(stream) == 3

    async def test_get_events_round_trips_fields(self, harness: EventStoreHarness) -> None:
        stream = _stream()
        when = datetime(2024, 5, 17, 8, 30, tzinfo=UTC)
        original = _event(
            stream,
            7,
            metadata={"user": "u1"},
            occurred_at=when,
            correlation_id="corr",
            causation_id="cause",
            tenant_id="t1",
        )
        await harness.store.append(original)
        [loaded] = await harness.store.get_events(stream)
        assert loaded.event_id == original.event_id
        assert loaded.payload == original.payload
        assert loaded.metadata == {"user": "u1"}
        assert loaded.occurred_at == when and loaded.occurred_at.tzinfo is not None
        assert (loaded.correlation_id, loaded.causation_id, loaded.tenant_id) == (
            "corr",
            "cause",
            "t1",
        )
        assert loaded.aggregate_type == "ContractOrder"
        assert loaded.version == 1

    async def test_get_events_version_range(self, harness: EventStoreHarness) -> None:
        stream = _stream()
        await harness.store.append([_event(stream, i) for i in range(5)])
        got = await harness.store.get_events(stream, from_version=2, to_version=4)
        assert [e.version for e in got] == [2, 3, 4]
        assert await harness.store.get_events(_stream()) == []

    async def test_expected_version_exact(self, harness: EventStoreHarness) -> None:
        stream = _stream()
        await harness.store.append(_event(stream), expected_version=StreamState.NO_STREAM)
        await harness.store.append(_event(stream), expected_version=1)
        with pytest.raises(WrongExpectedVersionError) as info:
            await harness.store.append(_event(stream), expected_version=1)
        assert info.value.stream_id == stream
        assert info.value.expected_version == 1
        assert info.value.actual_version == 2
        assert await harness.store.get_version(stream) == 2

    async def test_expected_no_stream_and_stream_exists(self, harness: EventStoreHarness) -> None:
        stream = _stream()
        with pytest.raises(WrongExpectedVersionError):
            await harness.store.append(_event(stream), expected_version=StreamState.STREAM_EXISTS)
        await harness.store.append(_event(stream), expected_version=StreamState.NO_STREAM)
        with pytest.raises(WrongExpectedVersionError):
            await harness.store.append(_event(stream), expected_version=StreamState.NO_STREAM)
        await harness.store.append(_event(stream), expected_version=StreamState.STREAM_EXISTS)
        assert await harness.store.get_version(stream) == 2

    async def test_same_event_appended_twice_is_stored_once(
        self, harness: EventStoreHarness
    ) -> None:
        stream = _stream()
        events = [_event(stream, i) for i in range(2)]
        first = await harness.store.append(events, expected_version=StreamState.NO_STREAM)
        again = await harness.store.append(events, expected_version=StreamState.NO_STREAM)
        assert [e.event_id for e in again] == [e.event_id for e in first]
        assert await harness.store.get_version(stream) == 2

    async def test_read_all_pages_through_everything_in_order(
        self, harness: EventStoreHarness
    ) -> None:
        streams = [_stream() for _ in range(3)]
        ids: list[str] = []
        for round_ in range(3):
            for s in streams:
                stored = await harness.store.append([_event(s, round_), _event(s, round_ + 1)])
                ids += [e.event_id for e in stored]
        seen, cursor = await read_all_until(harness.store, set(ids), limit=4)
        mine = [e for e in seen if e.event_id in set(ids)]
        assert [e.event_id for e in mine] == ids
        again, _ = await harness.store.read_all(after=cursor, limit=10)
        assert again == []

    async def test_rolled_back_append_is_invisible(self, harness: EventStoreHarness) -> None:
        if harness.new_uow is None:
            pytest.skip("store has no unit of work")
        stream = _stream()
        async with harness.new_uow() as uow:
            await harness.store.append(_event(stream), uow=uow)
        assert await harness.store.get_version(stream) == 0
        async with harness.new_uow() as uow:
            await harness.store.append(_event(stream), uow=uow)
            await uow.commit()
        assert await harness.store.get_version(stream) == 1
