"""The global log half of the event store: ``read_all``, ``subscribe``, ``horizon_lag``.

Reads never skip: the dialect's page statement only returns events of transactions below the
horizon (PostgreSQL's ``xid8`` snapshot horizon; SQLite's single writer makes position order
commit order) and pages by the commit-safe cursor (see ``dialects/eventlog.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from cqrs_ddd_core.errors import InvalidValueError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.waiting import wait_until_set
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import (
    Cursor,
    GlobalFilter,
    HorizonStatus,
    page_cursor,
)
from cqrs_ddd_persistence_sqlalchemy.eventstore.mapping import row_to_event
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import db_span

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.eventstore.store import SQLAlchemyEventStore

__all__ = ["GlobalLog"]


class GlobalLog:
    """``read_all`` / ``subscribe`` / ``horizon_lag`` of one :class:`SQLAlchemyEventStore`."""

    def __init__(self, store: SQLAlchemyEventStore) -> None:
        self._store = store

    async def read_all(
        self,
        *,
        after: str | None,
        limit: int,
        event_types: Iterable[str] | None,
        aggregate_types: Iterable[str] | None,
        tenant_id: str | None,
        uow: Any,
    ) -> tuple[list[StoredEvent], str | None]:
        if limit < 1:
            raise InvalidValueError("limit must be at least 1")
        flt = GlobalFilter(
            event_types=tuple(event_types) if event_types is not None else None,
            aggregate_types=tuple(aggregate_types) if aggregate_types is not None else None,
            tenant_id=tenant_id,
        )
        start = Cursor.decode(after)
        store = self._store
        log = store.log_for(uow)
        # A query-side read: on a replica when the engine has replicas (the horizon is then
        # the standby's own: see tests/topology/replicas/test_never_skip_standby.py).
        with db_span(store.binding.engine, "read", "cqrs_events"):
            async with store.binding.reading(uow) as runner:
                rows = await runner.fetch(log.page_query(start, limit, flt))
        events, cursor = page_cursor(rows, limit, flt, log.cursor_width)
        return [row_to_event(r) for r in events], cursor.encode() if cursor else after

    async def subscribe(
        self,
        *,
        after: str | None,
        batch_size: int,
        event_types: Iterable[str] | None,
        aggregate_types: Iterable[str] | None,
        tenant_id: str | None,
        on_cursor: Callable[[str | None], Any] | None,
    ) -> AsyncIterator[StoredEvent]:
        store = self._store
        types = tuple(event_types) if event_types is not None else None
        categories = tuple(aggregate_types) if aggregate_types is not None else None
        engine = store.listen_engine() if store.listen else None
        cursor = after
        poll_interval = store.poll_interval
        async with contextlib.AsyncExitStack() as stack:
            woken: asyncio.Event | None = None
            if engine is not None:
                support = store.binding.dialect()
                woken = await stack.enter_async_context(support.listen_event(engine, store.channel))
            recheck = 0.0  # > 0 while a wake-up has not produced its events yet
            while True:
                if woken is not None:
                    woken.clear()
                with db_span(store.binding.engine, "subscribe batch", "cqrs_events"):
                    page, cursor = await self.read_all(
                        after=cursor,
                        limit=batch_size,
                        event_types=types,
                        aggregate_types=categories,
                        tenant_id=tenant_id,
                        uow=None,
                    )
                for event in page:
                    yield event
                if on_cursor is not None and page:
                    result = on_cursor(cursor)
                    if asyncio.iscoroutine(result):
                        await result
                if len(page) == batch_size:
                    continue
                if woken is None and poll_interval is None:
                    return
                if woken is None:
                    await asyncio.sleep(poll_interval or 0)
                    continue
                timeout = poll_interval
                if page:
                    recheck = 0.0
                elif recheck:
                    # A notification said something committed but the page was empty: it is
                    # held back behind the horizon. Look again soon (backing off) rather than
                    # wait for a wake-up that may not come.
                    timeout = min(recheck, timeout or recheck)
                    recheck = min(recheck * 2, 1.0)
                if await wait_until_set(woken, timeout) and not recheck:
                    recheck = 0.02

    async def horizon_lag(self, *, uow: Any) -> HorizonStatus:
        store = self._store
        log = store.log_for(uow)
        async with store.binding.reading(uow) as runner:
            return await log.horizon(runner)
