"""The write half of the event store: appends (expected versions, idempotent retries) and
stream tombstones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, insert, select, update

from cqrs_ddd_core.adapters.memory.event_store import check_expected_version
from cqrs_ddd_core.domain.events import DomainEvent, utc_now
from cqrs_ddd_core.errors import (
    InvalidValueError,
    NotFoundError,
    PersistenceError,
    UniqueViolationError,
    WrongExpectedVersionError,
)
from cqrs_ddd_core.ports.event_store import ExpectedVersion, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import event_text_columns
from cqrs_ddd_persistence_sqlalchemy.errors import translating
from cqrs_ddd_persistence_sqlalchemy.eventstore.mapping import row_to_event
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import (
    db_span,
    trace_metadata,
    tracer_for,
)
from cqrs_ddd_persistence_sqlalchemy.tables.events import (
    UQ_EVENT_ID,
    UQ_STREAM_VERSION,
    events_table,
    stream_tombstones_table,
)

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.eventstore.store import SQLAlchemyEventStore

__all__ = ["Appender", "version_range"]

_MAX_VERSION = 1 << 62
_AGGREGATE_ID = attrgetter("aggregate_id")
_EVENT_ID = attrgetter("event_id")


def version_range(
    stream_id: str, expected: ExpectedVersion, batch: Sequence[StoredEvent]
) -> tuple[int, int]:
    """The stream versions (inclusive) at which ``batch`` may be appended."""
    if expected is StreamState.ANY:
        lo, hi = 0, _MAX_VERSION
    elif expected is StreamState.NO_STREAM:
        lo, hi = 0, 0
    elif expected is StreamState.STREAM_EXISTS:
        lo, hi = 1, _MAX_VERSION
    elif isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        lo = hi = expected
    else:
        raise InvalidValueError(f"invalid expected_version {expected!r}")
    first = batch[0].version
    if first is not None:
        # Explicit stream versions must be consecutive and start right after the stream's end.
        if any(e.version != first + i for i, e in enumerate(batch)):
            raise InvalidValueError(f"stream {stream_id!r}: explicit versions must be consecutive")
        lo, hi = max(lo, first - 1), min(hi, first - 1)
        if lo > hi:
            raise WrongExpectedVersionError(stream_id, expected, first - 1)
    return lo, hi


def _traced(event: StoredEvent) -> StoredEvent:
    metadata = trace_metadata(event.metadata)
    return event if metadata is None else replace(event, metadata=metadata)


class Appender:
    """Appends and tombstones of one :class:`SQLAlchemyEventStore`."""

    def __init__(self, store: SQLAlchemyEventStore) -> None:
        self._store = store

    async def append(
        self,
        events: StoredEvent | Sequence[StoredEvent],
        expected_version: ExpectedVersion,
        uow: Any,
    ) -> list[StoredEvent]:
        # One event given alone, a domain event too (a pydantic model iterates its fields).
        alone = isinstance(events, StoredEvent | DomainEvent)
        batch: list[Any] = [events] if alone else list(cast("Sequence[StoredEvent]", events))
        if not batch:
            return []
        # The checks run per event, so they are C-level passes (``map``), not generators.
        if not all(map(isinstance, batch, repeat(StoredEvent))):
            wrong = next(e for e in batch if not isinstance(e, StoredEvent))
            # A domain event (or anything else) here would fail deep in the dialect's SQL with
            # an AttributeError: say what the store takes instead.
            raise InvalidValueError(
                f"append takes StoredEvent objects, got {type(wrong).__name__}: wrap domain "
                "events with StoredEvent.from_domain_event(event, ...) or save them through "
                "the unit of work's event_sinks"
            )
        stream_id = batch[0].aggregate_id
        if list(map(_AGGREGATE_ID, batch)).count(stream_id) != len(batch):
            raise InvalidValueError("one append writes to one stream")
        ids = list(map(_EVENT_ID, batch))
        if len(set(ids)) != len(ids):
            raise InvalidValueError(f"stream {stream_id!r}: duplicate event ids in one append")
        allowed = version_range(stream_id, expected_version, batch)
        engine = self._store.binding.traced_engine(uow)
        if tracer_for(engine) is None:
            return await self._append(stream_id, batch, expected_version, allowed, ids, uow)
        with db_span(engine, "append", events_table.name):
            # The request's trace context travels with each event (projections continue it).
            batch = [_traced(e) for e in batch]
            return await self._append(stream_id, batch, expected_version, allowed, ids, uow)

    async def _append(
        self,
        stream_id: str,
        batch: list[StoredEvent],
        expected_version: ExpectedVersion,
        allowed: tuple[int, int],
        ids: list[str],
        uow: Any,
    ) -> list[StoredEvent]:
        owns = self._store.binding.owns_transaction(uow)
        # With ``ANY`` a lost race is no conflict for the caller: try again (a refused append
        # leaves the transaction usable, so this works inside the caller's unit of work too).
        retries = 3 if expected_version is StreamState.ANY else 0
        for attempt in range(retries + 1):
            try:
                return await self._append_once(
                    stream_id, batch, expected_version, allowed, ids, uow
                )
            except UniqueViolationError as exc:
                if exc.constraint != UQ_EVENT_ID or not owns:
                    raise
                # A concurrent retry of this batch won (only possible in a transaction of our
                # own, see ``guarded``): once more, which returns the stored events.
                return await self._append_once(
                    stream_id, batch, expected_version, allowed, ids, uow
                )
            except WrongExpectedVersionError as exc:
                if attempt < retries:
                    continue
                if exc.actual_version is None and owns:
                    # Lost at the unique constraint: our transaction is over, so the winner's
                    # version can be read and named in the error.
                    actual = await self._store.get_version(stream_id)
                    raise WrongExpectedVersionError(
                        stream_id, expected_version, actual or None
                    ) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _append_once(
        self,
        stream_id: str,
        batch: list[StoredEvent],
        expected_version: ExpectedVersion,
        allowed: tuple[int, int],
        ids: list[str],
        uow: Any,
    ) -> list[StoredEvent]:
        def lost_race(_: PersistenceError) -> WrongExpectedVersionError:
            # A concurrent append passed the same check first; the database refused ours.
            return WrongExpectedVersionError(stream_id, expected_version, None)

        constraints = {UQ_STREAM_VERSION: lost_race}
        store = self._store
        log = store.log_for(uow)
        execution = store.binding.own_execution(uow)
        with translating(constraints=constraints):
            if execution is not None and execution.autocommit and log.single_statement_append:
                # Outside any unit of work the append is one statement, atomic on its own: no
                # BEGIN/COMMIT round trips.
                drawn = await log.append(
                    execution, stream_id, batch, allowed, ids, guarded=False, autocommit=True
                )
                if drawn is None:
                    return await self._refused(execution, stream_id, batch, expected_version)
            elif execution is not None:
                async with execution.transaction() as executor:
                    drawn = await log.append(
                        executor, stream_id, batch, allowed, ids, guarded=False, autocommit=False
                    )
                    if drawn is None:
                        return await self._refused(executor, stream_id, batch, expected_version)
            else:
                # The caller's transaction: a lost race must leave it usable (guarded).
                async with store.binding.transaction(uow) as executor:
                    drawn = await log.append(
                        executor, stream_id, batch, allowed, ids, guarded=True, autocommit=False
                    )
                    if drawn is None:
                        return await self._refused(executor, stream_id, batch, expected_version)
        return [e.positioned(v, p) for e, (p, v) in zip(batch, drawn, strict=True)]

    async def _refused(
        self,
        runner: StatementRunner,
        stream_id: str,
        batch: list[StoredEvent],
        expected: ExpectedVersion,
    ) -> list[StoredEvent]:
        """Say why a precondition failed, or return the stored batch of an idempotent retry."""
        t = events_table.c
        ids = [e.event_id for e in batch]
        found = await runner.fetch(
            select(*event_text_columns()).where(t.event_id.in_(ids)).order_by(t.position)
        )
        stored = [row_to_event(r) for r in found]
        if len(stored) == len(batch) and all(s.aggregate_id == stream_id for s in stored):
            by_id = {s.event_id: s for s in stored}
            return [by_id[i] for i in ids]
        if stored:
            raise UniqueViolationError(
                f"stream {stream_id!r}: events {[s.event_id for s in stored]} are already "
                "stored (a retry must resend the whole batch)",
                constraint=UQ_EVENT_ID,
            )
        tomb = stream_tombstones_table.c
        if await runner.fetch(select(tomb.stream_id).where(tomb.stream_id == stream_id)):
            raise NotFoundError(f"stream {stream_id!r} is deleted", kind="stream", key=stream_id)
        actual = await self._store.get_version(stream_id, _runner=runner)
        check_expected_version(stream_id, expected, actual)
        first = batch[0].version
        raise WrongExpectedVersionError(
            stream_id, expected if first is None else first - 1, actual or None
        )

    async def delete_stream(
        self, stream_id: str, *, hard: bool, reason: str | None, uow: Any
    ) -> None:
        tomb = stream_tombstones_table.c
        t = events_table.c
        async with self._store.binding.transaction(uow) as executor:
            last = await self._store.get_version(stream_id, _runner=executor)
            existing = await executor.fetch(select(tomb.hard).where(tomb.stream_id == stream_id))
            if not existing:
                await executor.execute(
                    insert(stream_tombstones_table).values(
                        stream_id=stream_id,
                        deleted_at=utc_now(),
                        last_version=last,
                        hard=int(hard),
                        reason=reason,
                    )
                )
            elif hard and not existing[0][0]:
                await executor.execute(
                    update(stream_tombstones_table)
                    .where(tomb.stream_id == stream_id)
                    .values(hard=1)
                )
            if hard:
                await executor.execute(delete(events_table).where(t.stream_id == stream_id))
