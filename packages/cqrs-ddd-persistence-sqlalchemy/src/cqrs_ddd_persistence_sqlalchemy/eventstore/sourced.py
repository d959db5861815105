"""``EventSourcedRepository``: aggregates rebuilt from their stream (and a snapshot).

Load = the latest snapshot of the current state schema (if any) + the events after it.
Save = append the aggregate's new events with the loaded version as expected version, then
snapshot when the strategy says so — in the same unit of work.

The strategy is told the version of the aggregate's last snapshot (the one it was loaded from,
``0`` for a stream without one, or the one this repository took since), so ``EveryNEvents(n)``
snapshots each time the stream grew by ``n`` events since that snapshot — whether one save adds
one event or many, and right after a load from a snapshot.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from cqrs_ddd_advanced_core.snapshots import (
    ISnapshotStore,
    NeverSnapshot,
    Snapshot,
    SnapshotStrategy,
)
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.domain.event_registry import EventTypeRegistry, default_registry
from cqrs_ddd_core.errors import NotFoundError
from cqrs_ddd_core.ports.event_store import IEventStore, StoredEvent, StreamState
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork, current_uow

__all__ = ["EventSourcedRepository"]

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=AggregateRoot[Any])


class _SnapshotMarks:
    """The version of the last snapshot of each live aggregate object a repository handled.

    Keyed by object identity (aggregates are unhashable pydantic models) with a weak reference,
    so an entry goes away with its aggregate and a reused ``id()`` never inherits a mark.
    """

    def __init__(self) -> None:
        self._marks: dict[int, tuple[weakref.ref[Any], int]] = {}

    def get(self, aggregate: Any) -> int | None:
        entry = self._marks.get(id(aggregate))
        if entry is None or entry[0]() is not aggregate:
            return None
        return entry[1]

    def set(self, aggregate: Any, version: int | None) -> None:
        key = id(aggregate)
        marks = self._marks
        if version is None:
            marks.pop(key, None)
            return

        def forget(ref: weakref.ref[Any]) -> None:
            entry = marks.get(key)
            if entry is not None and entry[0] is ref:
                del marks[key]

        marks[key] = (weakref.ref(aggregate, forget), version)


class EventSourcedRepository(Generic[A]):
    """Repository of event-sourced aggregates.

    Example::

        class Account(AggregateRoot[str]):
            id: str
            balance: int = 0

            def deposit(self, amount: int) -> None:
                self.record(Deposited(amount=amount))

            def apply_Deposited(self, event: Deposited) -> None:
                self.balance += event.amount

        accounts = EventSourcedRepository(
            Account, SQLAlchemyEventStore(session_factory),
            snapshot_store=SQLAlchemySnapshotStore(session_factory),
            snapshot_strategy=EveryNEvents(100),
        )
        async with SQLAlchemyUnitOfWork(session_factory) as uow:
            account = await accounts.load("acc-1")
            account.deposit(10)
            await accounts.save(account)
            await uow.commit()

    Args:
        aggregate_cls: the aggregate class (a pydantic ``AggregateRoot``).
        event_store: any ``IEventStore`` (``SQLAlchemyEventStore``, ``InMemoryEventStore``).
        snapshot_store: optional snapshot store.
        snapshot_strategy: when to snapshot (default: never).
        snapshot_schema_version: version of the snapshot state's shape; snapshots of another
            version are ignored (default: the class's ``__snapshot_schema_version__`` or 1).
        factory: builds the empty aggregate a stream is replayed into (default:
            ``aggregate_cls.model_construct(id=aggregate_id)``).
        registry: event type registry turning stored events into typed ones.
    """

    def __init__(
        self,
        aggregate_cls: type[A],
        event_store: IEventStore,
        *,
        snapshot_store: ISnapshotStore | None = None,
        snapshot_strategy: SnapshotStrategy | None = None,
        snapshot_schema_version: int | None = None,
        factory: Callable[[str], A] | None = None,
        registry: EventTypeRegistry | None = None,
        aggregate_type: str | None = None,
    ) -> None:
        self.aggregate_cls = aggregate_cls
        self.event_store = event_store
        self.snapshot_store = snapshot_store
        self.snapshot_strategy: SnapshotStrategy = snapshot_strategy or NeverSnapshot()
        self.snapshot_schema_version = (
            snapshot_schema_version
            if snapshot_schema_version is not None
            else int(getattr(aggregate_cls, "__snapshot_schema_version__", 1))
        )
        self.factory: Callable[[str], A] = factory or self._construct
        self.registry = registry if registry is not None else default_registry
        self.aggregate_type = aggregate_type or aggregate_cls.__name__
        self._marks = _SnapshotMarks()

    def _construct(self, aggregate_id: str) -> A:
        # No validation: required fields are filled in by the replayed events.
        return cast(A, self.aggregate_cls.model_construct(id=aggregate_id))

    def _typed(self, stored: StoredEvent) -> Any:
        if self.registry.get(stored.event_type) is None:
            return stored  # unregistered: the aggregate's handler receives the StoredEvent
        return self.registry.hydrate(
            stored.event_type,
            stored.payload,
            schema_version=stored.schema_version,
            envelope=stored.envelope(),
        )

    async def get(self, aggregate_id: str, *, uow: Any = None) -> A | None:
        """The aggregate rebuilt from snapshot + events, or ``None`` if it has no events."""
        aggregate_id = str(aggregate_id)
        snapshot: Snapshot | None = None
        if self.snapshot_store is not None:
            snapshot = await self.snapshot_store.get_latest(
                self.aggregate_type,
                aggregate_id,
                schema_version=self.snapshot_schema_version,
                uow=uow,
            )
        if snapshot is not None:
            aggregate = self.aggregate_cls.model_validate(snapshot.state)
            set_persisted_version(aggregate, snapshot.version)
            events = await self.event_store.get_events(
                aggregate_id, from_version=snapshot.version + 1, uow=uow
            )
        else:
            events = await self.event_store.get_events(aggregate_id, uow=uow)
            if not events:
                return None
            aggregate = self.factory(aggregate_id)
            set_persisted_version(aggregate, 0)
        for event in events:
            aggregate.apply(self._typed(event))
        if events:
            set_persisted_version(aggregate, int(events[-1].version or 0))
        if self.snapshot_store is not None:
            # "every n events" counts from here: the snapshot loaded, or none (0)
            self._marks.set(aggregate, snapshot.version if snapshot is not None else 0)
        return aggregate

    async def load(self, aggregate_id: str, *, uow: Any = None) -> A:
        """Like :meth:`get`; raises ``NotFoundError`` when the stream is empty."""
        aggregate = await self.get(aggregate_id, uow=uow)
        if aggregate is None:
            raise NotFoundError(
                f"{self.aggregate_type} {aggregate_id!r} not found",
                kind=self.aggregate_type,
                key=aggregate_id,
            )
        return aggregate

    async def save(self, aggregate: A, *, uow: Any = None) -> list[StoredEvent]:
        """Append the aggregate's pending events (expected version: the loaded one).

        Raises ``WrongExpectedVersionError`` if somebody appended to the stream since it was
        loaded (the pending events stay on the aggregate). In a unit of work the aggregate's
        version changes when it commits; without one, right away.
        """
        joined = uow if uow is not None else current_uow()
        base = aggregate.version
        if isinstance(joined, SQLAlchemyUnitOfWork) and joined.active:
            pending = joined.pending_version(aggregate)
            base = pending if pending is not None else base
        events = aggregate.pull_domain_events()
        if not events:
            return []
        batch = [StoredEvent.from_domain_event(e) for e in events]
        expected = base if base > 0 else StreamState.NO_STREAM
        try:
            stored = await self.event_store.append(batch, expected_version=expected, uow=uow)
        except BaseException:
            aggregate._events[:0] = events  # nothing was written: keep them pending
            raise
        new_version = int(stored[-1].version or base + len(stored))
        if isinstance(joined, SQLAlchemyUnitOfWork) and joined.active:
            joined.register(aggregate, new_version=new_version)
        else:
            set_persisted_version(aggregate, new_version)
        if self.snapshot_store is not None:
            await self._maybe_snapshot(aggregate, base, new_version, uow=uow, joined=joined)
        return stored

    async def _maybe_snapshot(
        self, aggregate: A, base: int, new_version: int, *, uow: Any, joined: Any
    ) -> None:
        last = self._marks.get(aggregate)
        if last is None and base == 0:
            last = 0  # a new stream has no snapshot yet
            self._marks.set(aggregate, last)
        if not self.snapshot_strategy.should_snapshot(
            previous_version=base, new_version=new_version, last_snapshot_version=last
        ):
            return
        if not await self._snapshot(aggregate, new_version, uow=uow, own=joined is None):
            return  # the mark stays at the last snapshot that exists: the next save catches up
        self._marks.set(aggregate, new_version)
        if isinstance(joined, SQLAlchemyUnitOfWork) and joined.active:
            # the snapshot is part of the transaction: a rollback takes it (and the mark) back
            joined.after_rollback(lambda: self._marks.set(aggregate, last))

    async def _snapshot(self, aggregate: A, version: int, *, uow: Any, own: bool) -> bool:
        """Save a snapshot at ``version``; ``False`` when a snapshot of an already committed
        save failed (logged: the next save catches up)."""
        assert self.snapshot_store is not None
        snapshot = Snapshot(
            aggregate_type=self.aggregate_type,
            aggregate_id=str(aggregate.id),
            version=version,
            schema_version=self.snapshot_schema_version,
            state=aggregate.model_dump(mode="json"),
        )
        if not own:
            await self.snapshot_store.save(snapshot, uow=uow)
            return True
        try:
            await self.snapshot_store.save(snapshot)
        except Exception:
            # The events are committed already; a missing snapshot only costs replay time and
            # the strategy catches up on a later save.
            logger.warning(
                "snapshot of %s %s failed", self.aggregate_type, aggregate.id, exc_info=True
            )
            return False
        return True
