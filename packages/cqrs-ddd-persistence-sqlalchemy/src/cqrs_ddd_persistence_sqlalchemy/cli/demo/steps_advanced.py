"""Demo steps of the advanced components: a projection, jobs, a scheduled command, an
event-sourced aggregate with snapshots."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cqrs_ddd_persistence_sqlalchemy.cli.demo.base import (
    Demo,
    StepResult,
    expect,
    horizon_wait,
    visible_events,
)
from cqrs_ddd_persistence_sqlalchemy.cli.demo.domain import (
    LoyaltyAccount,
    SendInvoice,
    SendPaymentReminder,
)
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyUnitOfWork,
)

__all__ = ["event_sourcing", "jobs", "projection", "scheduled"]


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
            + horizon_wait(waited),
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
