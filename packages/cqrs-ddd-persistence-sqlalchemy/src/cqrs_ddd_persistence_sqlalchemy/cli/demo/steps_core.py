"""Demo steps of the core components: aggregates, sagas, the event store, the outbox."""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.cli.demo.base import (
    Demo,
    StepResult,
    expect,
    horizon_wait,
    visible_events,
)
from cqrs_ddd_persistence_sqlalchemy.cli.demo.domain import (
    Order,
    OrderFulfillmentSaga,
    Payments,
    Shipping,
    Warehouse,
)

__all__ = ["aggregates", "event_store", "outbox", "sagas"]


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
            f"{cursor[:24] + '…' if cursor and len(cursor) > 24 else cursor}{horizon_wait(waited)}",
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
