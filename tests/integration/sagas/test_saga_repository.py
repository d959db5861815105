"""SQLAlchemySagaRepository on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from saga_test_models import (
    OrderFulfillmentSaga,
    PaymentService,
    PaymentWaitSaga,
    Recorder,
    SagaTestPaymentCaptured,
    ThreeStepSaga,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.sagas import SagaOrchestrator, SagaStatus
from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    SagaRecoveryWorker,
    SQLAlchemySagaRepository,
)
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.sagas import sagas_table

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def factory(library_tables: AsyncEngine, session_factory: Factory) -> Factory:
    return session_factory


async def test_seed_saga_example_as_written(factory: Factory) -> None:
    payment_service = PaymentService()
    saga_repo = SQLAlchemySagaRepository(OrderFulfillmentSaga)
    async with SQLAlchemyUnitOfWork(session_factory=factory) as uow:
        saga = OrderFulfillmentSaga(order_id="123")
        await saga.process_payment(payment_service)
        await saga_repo.add(saga, uow=uow)
        assert saga.version == 0  # moves on at commit
        await uow.commit()
    assert saga.version == 1
    async with SQLAlchemyUnitOfWork(factory) as uow:
        loaded = await saga_repo.get(saga.id, uow=uow)
    assert loaded is not None
    assert loaded.payment_id == "pay-123"
    assert loaded.status is SagaStatus.COMPLETED
    assert loaded.version == 1
    assert loaded.created_at == saga.created_at


async def test_rollback_writes_nothing_and_keeps_version(factory: Factory) -> None:
    repo = SQLAlchemySagaRepository(ThreeStepSaga, factory)
    saga = ThreeStepSaga()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(saga, uow=uow)
    assert saga.version == 0
    assert await repo.get(saga.id) is None


async def test_saves_in_one_uow_chain_versions(factory: Factory) -> None:
    repo = SQLAlchemySagaRepository(ThreeStepSaga, factory)
    saga = ThreeStepSaga()
    async with SQLAlchemyUnitOfWork(factory) as uow:
        await repo.add(saga)  # ambient
        saga.start()
        await repo.add(saga)
        await uow.commit()
    assert saga.version == 2
    loaded = await repo.get(saga.id)
    assert loaded is not None and loaded.version == 2


async def test_optimistic_concurrency(factory: Factory) -> None:
    repo = SQLAlchemySagaRepository(ThreeStepSaga, factory)
    saga = ThreeStepSaga()
    await repo.add(saga)
    a, b = await repo.get(saga.id), await repo.get(saga.id)
    assert a is not None and b is not None
    a.start()
    await repo.add(a)
    b.start()
    with pytest.raises(OptimisticConcurrencyError) as info:
        await repo.add(b)
    assert info.value.expected_version == 1 and info.value.actual_version == 2
    # the same id inserted twice is a conflict too
    with pytest.raises(OptimisticConcurrencyError):
        await repo.add(ThreeStepSaga(id=saga.id))


async def test_correlation_id_unique_per_type_only(factory: Factory) -> None:
    three = SQLAlchemySagaRepository(ThreeStepSaga, factory)
    wait = SQLAlchemySagaRepository(PaymentWaitSaga, factory)
    await three.add(ThreeStepSaga(correlation_id="order-1"))
    await wait.add(PaymentWaitSaga(order_id="1", correlation_id="order-1"))
    with pytest.raises(OptimisticConcurrencyError):
        await three.add(ThreeStepSaga(correlation_id="order-1"))
    found = await three.find_by_correlation_id("order-1", "ThreeStepSaga")
    assert isinstance(found, ThreeStepSaga)
    found_wait = await wait.find_by_correlation_id("order-1")
    assert isinstance(found_wait, PaymentWaitSaga)
    assert await three.find_by_correlation_id("order-1", "PaymentWaitSaga") is None
    assert await three.find_by_correlation_id("nope") is None


async def test_third_step_failure_is_compensated_in_db(factory: Factory) -> None:
    repo = SQLAlchemySagaRepository(ThreeStepSaga, factory)
    rec = Recorder()
    saga = await SagaOrchestrator(repo, args=(rec,)).run(ThreeStepSaga(fail_at="three"))
    assert rec.items == ["one", "two", "undo_two", "undo_one"]
    async with factory() as session:
        row = (
            (await session.execute(select(sagas_table).where(sagas_table.c.saga_id == saga.id)))
            .mappings()
            .one()
        )
    assert row["saga_status"] == "COMPENSATED"
    assert row["status"] == "done"
    assert row["state"]["compensated_steps"] == ["two", "one"]
    loaded = await repo.get(saga.id)
    assert loaded is not None and loaded.status is SagaStatus.COMPENSATED
    assert await repo.count_by_status() == {SagaStatus.COMPENSATED: 1}


async def test_event_routing_timeouts_and_queries(factory: Factory) -> None:
    repo = SQLAlchemySagaRepository(PaymentWaitSaga, factory)
    rec = Recorder()
    orch = SagaOrchestrator(repo, args=(rec,))
    waiting = await orch.run(PaymentWaitSaga(order_id="a", correlation_id="c-a"))
    expiring = await orch.run(PaymentWaitSaga(order_id="b", correlation_id="c-b"))
    assert {s.id for s in await repo.find_suspended()} == {waiting.id, expiring.id}
    assert expiring.timeout_at is not None
    later = expiring.timeout_at + timedelta(seconds=1)
    assert len(await repo.find_timed_out(now=later)) == 2
    assert await repo.find_timed_out() == []

    event = SagaTestPaymentCaptured(amount=3, correlation_id="c-a")
    done = await orch.handle_event(event)
    assert done is not None and done.status is SagaStatus.COMPLETED
    await orch.handle_event(event)  # redelivered: ignored
    loaded = await repo.get(waiting.id)
    assert loaded is not None and loaded.paid == 3 and event.event_id in loaded.handled_event_ids
    assert rec.items.count("paid") == 1

    expired = await orch.expire(expiring, now=later)
    assert expired.status is SagaStatus.COMPENSATED
    assert rec.items[-1] == "release"


async def test_recovery_worker_resumes_stalled_and_expires_timed_out(
    factory: Factory, library_tables: AsyncEngine
) -> None:
    repo = SQLAlchemySagaRepository(ThreeStepSaga, factory, stall_after=timedelta(0))
    wait_repo = SQLAlchemySagaRepository(PaymentWaitSaga, factory)
    rec = Recorder()
    stalled = ThreeStepSaga()
    stalled.start()
    await stalled.one(rec)
    await repo.add(stalled)  # the process "dies" here
    suspended = await SagaOrchestrator(wait_repo, args=(rec,)).run(
        PaymentWaitSaga(order_id="x", correlation_id="c-x")
    )
    # make the wait expire
    async with factory() as session, session.begin():
        await session.execute(
            sagas_table.update()
            .where(sagas_table.c.saga_id == suspended.id)
            .values(available_at=sagas_table.c.created_at)
        )
    assert [s.id for s in await repo.find_stalled()] == [stalled.id]

    worker = SagaRecoveryWorker(
        [SagaOrchestrator(repo, args=(rec,)), SagaOrchestrator(wait_repo, args=(rec,))],
        library_tables,
    )
    assert await worker.run_once() == 2
    assert await worker.run_once() == 0
    assert rec.items == ["one", "reserve", "two", "three"]
    done = await repo.get(stalled.id)
    assert done is not None and done.status is SagaStatus.COMPLETED
    # timeout_at was still in the future: nothing compensated, rescheduled for the timeout
    back = await wait_repo.get(suspended.id)
    assert back is not None and back.is_suspended
    assert await worker.run_once() == 0

    back.timeout_at = back.created_at  # the wait expires
    await wait_repo.add(back)
    assert await worker.run_once() == 1
    expired = await wait_repo.get(suspended.id)
    assert expired is not None and expired.status is SagaStatus.COMPENSATED
    assert rec.items[-1] == "release"


async def test_concurrent_delivery_of_one_event_is_applied_once(factory: Factory) -> None:
    rec = Recorder()
    first = SagaOrchestrator(SQLAlchemySagaRepository(PaymentWaitSaga, factory), args=(rec,))
    second = SagaOrchestrator(SQLAlchemySagaRepository(PaymentWaitSaga, factory), args=(rec,))
    saga = await first.run(PaymentWaitSaga(order_id="c", correlation_id="c-c"))
    event = SagaTestPaymentCaptured(amount=5, correlation_id="c-c")
    await asyncio.gather(first.handle_event(event), second.handle_event(event))
    stored = await first.repository.get(saga.id)
    assert stored is not None and stored.status is SagaStatus.COMPLETED
    assert stored.paid == 5  # applied once, whichever delivery won
    assert stored.handled_event_ids == [event.event_id]
    assert rec.items.count("ship") == 1


async def test_long_step_is_kept_alive_not_recovered(
    factory: Factory, library_tables: AsyncEngine
) -> None:
    from cqrs_ddd_advanced_core.sagas import saga_step
    from cqrs_ddd_advanced_core.sagas.state import SagaState

    class LongStepSaga(SagaState):
        @saga_step
        async def slow(self, rec: Recorder) -> None:
            rec.append("slow-start")
            await asyncio.sleep(1.5)
            rec.append("slow-end")

    repo = SQLAlchemySagaRepository(LongStepSaga, factory, stall_after=timedelta(seconds=0.6))
    rec = Recorder()
    orchestrator = SagaOrchestrator(repo, args=(rec,))
    recovery = SagaRecoveryWorker([SagaOrchestrator(repo, args=(rec,))], library_tables)
    running = asyncio.create_task(orchestrator.run(LongStepSaga()))
    stolen = 0
    for _ in range(8):  # 1.6 s: well past stall_after while the step runs
        await asyncio.sleep(0.2)
        stolen += await recovery.run_once()
    saga = await running
    assert stolen == 0
    assert rec.items == ["slow-start", "slow-end"]
    assert saga.status is SagaStatus.COMPLETED
