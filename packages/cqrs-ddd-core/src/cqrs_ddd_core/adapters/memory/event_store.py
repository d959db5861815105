"""In-memory event store with the expected-version rules of the SQL one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from cqrs_ddd_core.adapters.memory._uow import run_in_uow
from cqrs_ddd_core.errors import InvalidValueError, WrongExpectedVersionError
from cqrs_ddd_core.ports.event_store import ExpectedVersion, StoredEvent, StreamState
from cqrs_ddd_core.waiting import wait_until_set

__all__ = ["InMemoryEventStore", "check_expected_version"]


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """Raise ``WrongExpectedVersionError`` unless a stream at ``actual`` satisfies ``expected``."""
    if expected is StreamState.ANY:
        return
    if expected is StreamState.NO_STREAM:
        ok = actual == 0
    elif expected is StreamState.STREAM_EXISTS:
        ok = actual > 0
    elif isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        ok = actual == expected
    else:
        raise InvalidValueError(f"invalid expected_version {expected!r}")
    if not ok:
        raise WrongExpectedVersionError(stream_id, expected, actual if actual else None)


class InMemoryEventStore:
    """Streams in a dict, the global log in a list; ``read_all`` cursors are positions."""

    def __init__(self) -> None:
        self._streams: dict[str, list[StoredEvent]] = {}
        self._log: list[StoredEvent] = []
        self._ids: dict[str, StoredEvent] = {}
        self._changed = asyncio.Event()

    async def append(
        self,
        events: StoredEvent | Sequence[StoredEvent],
        *,
        expected_version: ExpectedVersion = StreamState.ANY,
        uow: Any = None,
    ) -> list[StoredEvent]:
        batch = [events] if isinstance(events, StoredEvent) else list(events)
        if not batch:
            return []
        stream_id = batch[0].aggregate_id
        if any(e.aggregate_id != stream_id for e in batch):
            raise InvalidValueError("one append writes to one stream")
        known = [self._ids.get(e.event_id) for e in batch]
        if all(k is not None for k in known):
            return [k for k in known if k is not None]  # idempotent retry
        result: list[StoredEvent] = []

        def check() -> None:
            actual = len(self._streams.get(stream_id, []))
            check_expected_version(stream_id, expected_version, actual)
            first = batch[0].version
            if first is not None and first != actual + 1:
                raise WrongExpectedVersionError(stream_id, first - 1, actual or None)

        def apply() -> None:
            stream = self._streams.setdefault(stream_id, [])
            for event in batch:
                stored = event.positioned(len(stream) + 1, len(self._log) + 1)
                stream.append(stored)
                self._log.append(stored)
                self._ids[stored.event_id] = stored
                result.append(stored)
            self._changed.set()

        run_in_uow(uow, apply, check=check)
        return result

    async def get_events(
        self,
        aggregate_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        uow: Any = None,
    ) -> list[StoredEvent]:
        lo = from_version or 1
        hi = to_version if to_version is not None else 1 << 62
        return [e for e in self._streams.get(aggregate_id, []) if lo <= (e.version or 0) <= hi]

    async def get_version(self, aggregate_id: str, *, uow: Any = None) -> int:
        return len(self._streams.get(aggregate_id, []))

    async def stream_exists(self, aggregate_id: str, *, uow: Any = None) -> bool:
        return aggregate_id in self._streams

    async def read_all(
        self, *, after: str | None = None, limit: int = 1000
    ) -> tuple[list[StoredEvent], str | None]:
        start = int(after) if after else 0
        page = self._log[start : start + limit]
        cursor = str(start + len(page)) if page else after
        return page, cursor

    async def subscribe(
        self, *, after: str | None = None, poll_interval: float = 0.5
    ) -> AsyncIterator[StoredEvent]:
        cursor = after
        while True:
            self._changed.clear()
            page, cursor = await self.read_all(after=cursor)
            for event in page:
                yield event
            if not page:
                await wait_until_set(self._changed, poll_interval)
