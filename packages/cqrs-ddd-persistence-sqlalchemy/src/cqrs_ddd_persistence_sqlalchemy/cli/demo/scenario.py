"""The demo scenario: one order-fulfilment story told through every component.

Each step is an ``async`` function taking the :class:`Demo` wiring and returning a
:class:`StepResult` — what it did, in a few lines. A step checks its own outcome with
:func:`expect`; a failed expectation stops the demo with a one-line error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError, OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.cli.demo.domain import (
    LoyaltyAccount,
    Order,
    OrderFulfillmentSaga,
    OrderModel,
    Payments,
    SendInvoice,
    SendPaymentReminder,
    Shipping,
    Warehouse,
)
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)

__all__ = ["STEPS", "Demo", "DemoCheckFailed", "StepResult", "expect"]


class DemoCheckFailed(ConfigurationError):
    """The demo did not observe what it expected (a bug, or a broken installation)."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoCheckFailed(f"demo check failed: {message}")


@dataclass
class StepResult:
    title: str
    component: str
    lines: list[str]


@dataclass
class Demo:
    """The demo's composition root: one engine, one session factory, the stores."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession] = field(init=False)
    event_store: SQLAlchemyEventStore = field(init=False)
    outbox: SQLAlchemyOutboxStorage = field(init=False)
    orders: SQLAlchemyRepository[Order] = field(init=False)

    def __post_init__(self) -> None:
        self.session_factory = async_sessionmaker(self.engine, expire_on_commit=False)
        # Polling only: the demo drains synchronously, it never waits for a NOTIFY.
        self.event_store = SQLAlchemyEventStore(
            self.session_factory, listen=False, poll_interval=None
        )
        self.outbox = SQLAlchemyOutboxStorage(self.engine)
        self.orders = SQLAlchemyRepository(Order, OrderModel)

    def uow(self) -> SQLAlchemyUnitOfWork:
        """A unit of work that writes its aggregates' events to the event store and outbox."""
        return SQLAlchemyUnitOfWork(
            self.session_factory, event_sinks=[self.event_store, self.outbox]
        )


Step = Callable[[Demo], Awaitable[StepResult]]


async def visible_events(
    demo: Demo, expected: int, *, patience: float = 30.0
) -> tuple[list[Any], float]:
    """The global log once ``expected`` events are visible to subscribers, and the wait.

    On PostgreSQL a subscriber only sees transactions below the commit-safe horizon: an open
    transaction anywhere in the cluster holds back events committed after it started. The demo
    waits for the horizon instead of reading a log with holes.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        events, _ = await demo.event_store.read_all(limit=1000)
        waited = loop.time() - started
        if len(events) >= expected:
            return events, waited
        if waited > patience:
            status = await demo.event_store.horizon_lag()
            raise DemoCheckFailed(
                f"only {len(events)} of {expected} events visible after {patience:.0f} s: an open "
                f"transaction (pid {status.oldest_pid}) holds the commit-safe horizon back"
            )
        await asyncio.sleep(0.05)


def _waited(seconds: float) -> str:
    return f" (waited {seconds:.1f} s for the commit-safe horizon)" if seconds >= 0.05 else ""


# -- 1. aggregates through the unit of work --------------------------------------------------
async def aggregates(demo: Demo) -> StepResult:
    placed = [
        Order.place("ord-1", "alice", Decimal("120.00")),
        Order.place("ord-2", "bob", Decimal("35.50")),
        Order.place("ord-3", "carol", Decimal("250.00")),
    ]
    async with demo.uow() as uow:
        for order in placed:
            await demo.orders.add(order, uow=uow)
        await uow.commit()
    expect([o.version for o in placed] == [1, 1, 1], "new orders are at version 1")

    async with demo.uow() as uow:
        for order_id in ("ord-1", "ord-3"):
            loaded = await demo.orders.get(order_id, uow=uow)
            expect(loaded is not None, f"{order_id} loads")
            assert loaded is not None
            loaded.mark_paid(f"pay-{order_id}")
            await demo.orders.add(loaded, uow=uow)
        await uow.commit()

    # Optimistic concurrency: two copies of ord-2 loaded at version 1, both modified.
    async with demo.uow() as uow:
        first = await demo.orders.get("ord-2", uow=uow)
    async with demo.uow() as uow:
        second = await demo.orders.get("ord-2", uow=uow)
    assert first is not None and second is not None
    first.mark_paid("pay-ord-2")
    async with demo.uow() as uow:
        await demo.orders.add(first, uow=uow)
        await uow.commit()
    second.mark_paid("pay-ord-2-again")
    rejected = ""
    async with demo.uow() as uow:
        try:
            await demo.orders.add(second, uow=uow)
        except OptimisticConcurrencyError as exc:
            rejected = type(exc).__name__
    expect(rejected == "OptimisticConcurrencyError", "the stale writer is rejected")
    logged, _ = await visible_events(demo, 6)
    queued = await demo.outbox.stats()
    expect(len(logged) == queued.pending == 6, "6 events in the event store and in the outbox")
    return StepResult(
        "Aggregates saved through the unit of work",
        "SQLAlchemyUnitOfWork + SQLAlchemyRepository",
        [
            "3 orders placed in one transaction → version 1 each",
            "ord-1, ord-3 paid → version 2; their events collected by the unit of work",
            f"{len(logged)} domain events written to the event store and {queued.pending} to the "
            "outbox, each in the commit of its aggregate",
            f"a stale copy of ord-2 (v1 after another writer made v2) was rejected: {rejected}",
        ],
    )


# -- 2. sagas ------------------------------------------------------------------------------
async def sagas(demo: Demo) -> StepResult:
    from cqrs_ddd_advanced_core.sagas import SagaOrchestrator, SagaStatus
    from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemySagaRepository

    warehouse, payments = Warehouse(), Payments()
    shipping = Shipping(undeliverable={"Atlantis"})
    repo = SQLAlchemySagaRepository(OrderFulfillmentSaga, demo.session_factory)
    orchestrator = SagaOrchestrator(repo, args=(warehouse, payments, shipping))

    ok = await orchestrator.run(
        OrderFulfillmentSaga(
            order_id="ord-1", amount=Decimal("120.00"), address="1 Main St", correlation_id="ord-1"
        )
    )
    bad = await orchestrator.run(
        OrderFulfillmentSaga(
            order_id="ord-3", amount=Decimal("250.00"), address="Atlantis", correlation_id="ord-3"
        )
    )
    stored_ok, stored_bad = await repo.get(ok.id), await repo.get(bad.id)
    expect(
        stored_ok is not None and stored_ok.status is SagaStatus.COMPLETED,
        "the first saga is COMPLETED in the database",
    )
    expect(
        stored_bad is not None and stored_bad.status is SagaStatus.COMPENSATED,
        "the second saga is COMPENSATED in the database",
    )
    assert stored_bad is not None
    expect(
        stored_bad.compensated_steps == ["take_payment", "reserve_stock"],
        "compensations ran latest-first",
    )
    expect(
        list(payments.captured) == ["pay-ord-1"] and list(warehouse.reserved) == ["ord-1"],
        "only ord-1 keeps its payment and its stock",
    )

    # The completed saga ships its order: one more event through the unit of work.
    async with demo.uow() as uow:
        order = await demo.orders.get("ord-1", uow=uow)
        assert order is not None
        order.ship(ok.carrier or "?")
        await demo.orders.add(order, uow=uow)
        await uow.commit()
    return StepResult(
        "A saga that completes and one that compensates",
        "SagaOrchestrator + SQLAlchemySagaRepository",
        [
            f"ord-1: {' → '.join(ok.completed_steps)} → {stored_ok.status.value if stored_ok else '?'}",  # noqa: E501
            f"ord-3: reserve_stock → take_payment → book_courier failed ({shipping.log[-1]})",
            f"ord-3 compensated latest-first: {' → '.join(stored_bad.compensated_steps)} "
            f"→ {stored_bad.status.value}",
            f"services: {payments.log[-1]}; {warehouse.log[-1]}",
            "state saved after every step; a crashed worker's sagas are resumed by "
            "`cqrs-ddd-sqla sagas recover`",
        ],
    )


# -- 3. event store ----------------------------------------------------------------------------
async def event_store(demo: Demo) -> StepResult:
    events, waited = await visible_events(demo, 7)
    _, cursor = await demo.event_store.read_all(limit=1000)
    by_type: dict[str, int] = {}
    for e in events:
        by_type[e.event_type] = by_type.get(e.event_type, 0) + 1
    stream = await demo.event_store.get_events("ord-1")
    expect(len(events) == 7, f"7 events in the log, found {len(events)}")
    expect([e.version for e in stream] == [1, 2, 3], "ord-1's stream has versions 1, 2, 3")
    typed = [type(demo.event_store.to_domain_event(e)).__name__ for e in stream]
    return StepResult(
        "Events appended to the event store",
        "SQLAlchemyEventStore",
        [
            f"{len(events)} events in the global log: "
            + ", ".join(f"{t} x{n}" for t, n in sorted(by_type.items())),
            "stream ord-1: "
            + ", ".join(f"v{e.version} {e.event_type}" for e in stream)
            + f" (loaded back as {', '.join(typed)})",
            "subscribers read it with a commit-safe cursor: "
            f"{cursor[:24] + '…' if cursor and len(cursor) > 24 else cursor}{_waited(waited)}",
        ],
    )


# -- 4. outbox relay -----------------------------------------------------------------------------
async def outbox(demo: Demo) -> StepResult:
    from cqrs_ddd_persistence_sqlalchemy.outbox import OutboxRelay
    from cqrs_ddd_persistence_sqlalchemy.publishers import InMemoryPublisher

    before = await demo.outbox.stats()
    publisher = InMemoryPublisher()
    relay = OutboxRelay(demo.outbox, publisher, batch_size=5, listen=False)
    while await relay.run_once():
        pass
    after = await demo.outbox.stats()
    expect(len(publisher.published) == before.pending, "every pending message was published")
    expect(after.pending == 0 and after.done == before.pending, "the outbox is drained")
    return StepResult(
        "Outbox relayed to an in-process broker",
        "SQLAlchemyOutboxStorage + OutboxRelay + InMemoryPublisher",
        [
            f"{before.pending} messages pending, written with their aggregates' transactions",
            f"relay: claimed {relay.metrics.claimed} in {relay.metrics.batches} batch(es) of ≤5, "
            f"published {relay.metrics.published}, acked after the broker confirmed",
            "first published: "
            + ", ".join(f"{m.event_type}({m.partition_key})" for m in publisher.published[:3])
            + " …",
            f"outbox now: {after.pending} pending, {after.done} published, {after.dead} dead",
        ],
    )


# -- 5. projection -------------------------------------------------------------------------------
async def projection(demo: Demo) -> StepResult:
    from cqrs_ddd_persistence_sqlalchemy.advanced import (
        ProjectionRunner,
        SQLAlchemyProjectionStore,
    )
    from cqrs_ddd_persistence_sqlalchemy.cli.demo.read_model import COLLECTION, order_summaries
    from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder

    store = SQLAlchemyProjectionStore(demo.session_factory)
    runner = ProjectionRunner(
        order_summaries,
        demo.session_factory,
        event_store=demo.event_store,
        store=store,
        batch_size=3,
    )
    _, waited = await visible_events(demo, 7)
    applied = await runner.run_once()
    checkpoint = await runner.status()
    spec = (
        SpecificationBuilder()
        .where("total", "gt", 100)
        .and_where("status", "in", ["paid", "shipped"])
        .build()
    )
    found = await store.find(COLLECTION, spec, QueryOptions(order_by=("id",)))
    again = await runner.run_once()
    expect(applied == 7 and again == 0, f"7 events applied once (got {applied}, then {again})")
    expect([d["_id"] for d in found] == ["ord-1", "ord-3"], f"query result {found}")
    return StepResult(
        "Projection built and queried with a specification",
        "ProjectionRunner + SQLAlchemyProjectionStore + specifications",
        [
            f"{applied} events applied in batches of 3; checkpoint written in the same "
            f"transaction (events processed: {checkpoint.events_processed if checkpoint else 0})"
            + _waited(waited),
            "query: total > 100 AND status IN (paid, shipped), compiled to SQL →",
            *(f"  {d['_id']}: {d['customer_id']}, {d['total']:.2f}, {d['status']}" for d in found),
            f"run again: {again} events (exactly once)",
        ],
    )


# -- 6. background jobs ----------------------------------------------------------------------
async def jobs(demo: Demo) -> StepResult:
    from cqrs_ddd_advanced_core.jobs import JobStatus
    from cqrs_ddd_persistence_sqlalchemy.jobs import JobWorker, SQLAlchemyBackgroundJobRepository

    repo = SQLAlchemyBackgroundJobRepository(SendInvoice, demo.engine, lease_seconds=10)
    async with demo.uow() as uow:
        ids = [
            await repo.enqueue(
                SendInvoice(order_id="ord-1", flaky=True), dedupe_key="invoice:ord-1", uow=uow
            ),
            await repo.enqueue(SendInvoice(order_id="ord-2"), dedupe_key="invoice:ord-2", uow=uow),
        ]
        await uow.commit()
    duplicate = await repo.enqueue(SendInvoice(order_id="ord-1"), dedupe_key="invoice:ord-1")
    expect(duplicate == ids[0], "a second enqueue with the same dedupe key is a no-op")

    worker = JobWorker(repo, concurrency=2, poll_interval=0.05)
    runs = 0
    for _ in range(100):  # until both jobs are settled (the retry waits for its backoff)
        runs += await worker.run_until_idle()
        counts = await repo.count_by_status()
        if counts[JobStatus.PENDING] == counts[JobStatus.RUNNING] == 0:
            break
        await asyncio.sleep(0.05)
    flaky, steady = await repo.get(ids[0]), await repo.get(ids[1])
    assert flaky is not None and steady is not None
    expect(flaky.status is JobStatus.COMPLETED and flaky.attempts == 2, f"flaky job: {flaky}")
    expect(steady.status is JobStatus.COMPLETED and steady.attempts == 1, f"job: {steady}")
    return StepResult(
        "Background jobs with a retry",
        "SQLAlchemyBackgroundJobRepository + JobWorker",
        [
            "2 invoice jobs enqueued in the unit of work (dedupe keys: a re-enqueue is a no-op)",
            f"invoice ord-1: attempt 1 failed ({flaky.error or 'SMTP server timed out'}), "
            f"retried after its backoff → {flaky.status.value} after {flaky.attempts} attempts",
            f"invoice ord-2: {steady.status.value} after {steady.attempts} attempt, "
            f"result {steady.result}",
            f"worker: concurrency 2, {runs} runs settled, leases extended by heartbeats",
        ],
    )


# -- 7. scheduled command --------------------------------------------------------------------
async def scheduled(demo: Demo) -> StepResult:
    from cqrs_ddd_core.domain.events import utc_now
    from cqrs_ddd_persistence_sqlalchemy.scheduling import (
        SchedulerWorker,
        SQLAlchemyCommandScheduler,
    )

    scheduler = SQLAlchemyCommandScheduler(demo.engine)
    due = utc_now() + timedelta(seconds=0.5)
    async with demo.uow() as uow:
        await scheduler.schedule(
            SendPaymentReminder(order_id="ord-2"), at=due, key="reminder:ord-2", uow=uow
        )
        await uow.commit()
    dispatched: list[SendPaymentReminder] = []

    async def dispatch(command: SendPaymentReminder) -> None:
        dispatched.append(command)

    worker = SchedulerWorker(scheduler, dispatch, [SendPaymentReminder], poll_interval=0.05)
    early = await worker.run_once()
    await asyncio.sleep(max(0.0, (due - utc_now()).total_seconds()) + 0.05)
    on_time = await worker.run_once()
    later = await worker.run_once()
    expect((early, on_time, later) == (0, 1, 0), f"dispatches {early}, {on_time}, {later}")
    expect([c.order_id for c in dispatched] == ["ord-2"], "the reminder was dispatched once")
    return StepResult(
        "A scheduled command",
        "SQLAlchemyCommandScheduler + SchedulerWorker",
        [
            "SendPaymentReminder(ord-2) scheduled 0.5 s ahead, in the unit of work",
            f"before it was due: {early} dispatched; when due: {on_time}; afterwards: {later}",
            "claimed with a lease, acknowledged after dispatch: exactly once across workers",
        ],
    )


# -- 8. event-sourced aggregate with snapshots -------------------------------------------------
async def event_sourcing(demo: Demo) -> StepResult:
    from cqrs_ddd_advanced_core.snapshots import EveryNEvents
    from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemySnapshotStore
    from cqrs_ddd_persistence_sqlalchemy.core import EventSourcedRepository

    snapshots = SQLAlchemySnapshotStore(demo.session_factory)
    accounts = EventSourcedRepository(
        LoyaltyAccount,
        demo.event_store,
        snapshot_store=snapshots,
        snapshot_strategy=EveryNEvents(10),
    )
    for _ in range(5):  # five saves of five purchases each
        async with SQLAlchemyUnitOfWork(demo.session_factory) as uow:
            account = await accounts.get("loyalty-alice", uow=uow)
            account = account or LoyaltyAccount(id="loyalty-alice")
            for _ in range(5):
                account.earn(10)
            await accounts.save(account, uow=uow)
            await uow.commit()
    latest = await snapshots.get_latest("LoyaltyAccount", "loyalty-alice")
    expect(latest is not None and latest.version == 20, f"latest snapshot {latest}")
    assert latest is not None
    tail = await demo.event_store.get_events("loyalty-alice", from_version=latest.version + 1)
    loaded = await accounts.load("loyalty-alice")
    expect(loaded.points == 250 and loaded.version == 25, f"loaded {loaded}")
    return StepResult(
        "An event-sourced aggregate with snapshots",
        "EventSourcedRepository + SQLAlchemySnapshotStore",
        [
            "25 PointsEarned events appended in 5 saves (expected version checked each time)",
            f"snapshot every 10 events → latest snapshot at v{latest.version} (upserted)",
            f"load = snapshot v{latest.version} + {len(tail)} later events → "
            f"{loaded.points} points, version {loaded.version}",
        ],
    )


STEPS: list[tuple[str, Step]] = [
    ("aggregates", aggregates),
    ("sagas", sagas),
    ("event store", event_store),
    ("outbox", outbox),
    ("projection", projection),
    ("jobs", jobs),
    ("scheduled command", scheduled),
    ("event sourcing", event_sourcing),
]
