"""Saga domain and orchestrator, persistence-free (in-memory repository)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from saga_test_models import (
    OrderFulfillmentSaga,
    PaymentService,
    PaymentWaitSaga,
    Recorder,
    SagaTestPaymentCaptured,
    ThreeStepSaga,
)

from cqrs_ddd_advanced_core.sagas import (
    InMemorySagaRepository,
    SagaOrchestrator,
    SagaStatus,
    saga_step,
)
from cqrs_ddd_advanced_core.sagas.state import SagaState
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import DomainError, OptimisticConcurrencyError


class CountingRepo(InMemorySagaRepository[Any]):
    def __init__(self, saga_cls: type[Any]) -> None:
        super().__init__(saga_cls)
        self.snapshots: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []

    async def add(self, saga: Any, *, uow: Any = None) -> None:
        await super().add(saga, uow=uow)
        self.snapshots.append(
            (saga.status.value, tuple(saga.completed_steps), tuple(saga.compensated_steps))
        )


async def test_seed_example_runs_as_written() -> None:
    saga = OrderFulfillmentSaga(order_id="123")
    assert saga.id  # generated
    payments = PaymentService()
    await saga.process_payment(payments)
    assert saga.payment_id == "pay-123"
    assert saga.completed_steps == ["process_payment"]
    assert saga.status is SagaStatus.COMPLETED
    await saga.compensate(payments)
    assert payments.refunded == ["pay-123"]
    status: SagaStatus = saga.status
    assert status is SagaStatus.COMPENSATED


def test_ids_are_unique_and_steps_ordered() -> None:
    assert OrderFulfillmentSaga(order_id="1").id != OrderFulfillmentSaga(order_id="1").id
    assert [s.name for s in ThreeStepSaga.steps()] == ["one", "two", "three"]
    assert ThreeStepSaga.steps()[0].compensation == "undo_one"
    assert PaymentWaitSaga.steps()[1].on_event == "SagaTestPaymentCaptured"


def test_unknown_compensation_is_a_domain_error() -> None:
    class Broken(SagaState):
        @saga_step(compensation="nope")
        async def go(self) -> None:
            return None

    with pytest.raises(DomainError, match="nope"):
        Broken.steps()


async def test_all_steps_complete_and_each_is_persisted() -> None:
    repo = CountingRepo(ThreeStepSaga)
    rec = Recorder()
    saga = await SagaOrchestrator(repo, args=(rec,)).run(ThreeStepSaga())
    assert rec.items == ["one", "two", "three"]
    assert saga.status is SagaStatus.COMPLETED
    completed = [s[1] for s in repo.snapshots]
    assert ("one",) in completed and ("one", "two") in completed
    stored = await repo.get(saga.id)
    assert stored is not None and stored.status is SagaStatus.COMPLETED
    assert stored.version == saga.version == len(repo.snapshots)


async def test_third_step_failure_compensates_two_then_one() -> None:
    repo = CountingRepo(ThreeStepSaga)
    rec = Recorder()
    saga = await SagaOrchestrator(repo, args=(rec,)).run(ThreeStepSaga(fail_at="three"))
    assert rec.items == ["one", "two", "undo_two", "undo_one"]
    assert saga.status is SagaStatus.COMPENSATED
    assert saga.failed_step == "three"
    assert "three failed" in (saga.error or "")
    assert repo.snapshots[-1] == ("COMPENSATED", ("one", "two"), ("two", "one"))
    assert any(s[0] == "COMPENSATING" for s in repo.snapshots)


async def test_failing_compensation_leaves_failed() -> None:
    repo = InMemorySagaRepository(ThreeStepSaga)
    rec = Recorder()
    saga = await SagaOrchestrator(repo, args=(rec,)).run(
        ThreeStepSaga(fail_at="three", fail_compensation="one")
    )
    assert rec.items == ["one", "two", "undo_two"]
    assert saga.status is SagaStatus.FAILED
    assert "undo one failed" in (saga.error or "")
    with pytest.raises(DomainError):
        await saga.one(rec)


async def test_resume_continues_from_the_last_persisted_step() -> None:
    repo = InMemorySagaRepository(ThreeStepSaga)
    rec = Recorder()
    saga = ThreeStepSaga()
    saga.start()
    await saga.one(rec)
    await repo.add(saga)  # "crash" here
    loaded = await repo.get(saga.id)
    assert loaded is not None
    await SagaOrchestrator(repo, args=(rec,)).resume(loaded)
    assert rec.items == ["one", "two", "three"]
    assert loaded.status is SagaStatus.COMPLETED


async def test_stale_copy_cannot_advance_the_saga() -> None:
    repo = InMemorySagaRepository(ThreeStepSaga)
    saga = ThreeStepSaga()
    await repo.add(saga)
    a, b = await repo.get(saga.id), await repo.get(saga.id)
    assert a is not None and b is not None
    await repo.add(a)
    with pytest.raises(OptimisticConcurrencyError):
        await repo.add(b)


async def test_event_step_waits_and_dedupes() -> None:
    repo = InMemorySagaRepository(PaymentWaitSaga)
    rec = Recorder()
    orch = SagaOrchestrator(repo, args=(rec,))
    saga = await orch.run(PaymentWaitSaga(order_id="o1", correlation_id="c-1"))
    assert saga.is_suspended and saga.waiting_for == "SagaTestPaymentCaptured"
    assert saga.timeout_at is not None
    assert rec.items == ["reserve"]

    other = SagaTestPaymentCaptured(amount=5, correlation_id="unknown")
    assert await orch.handle_event(other) is None

    event = SagaTestPaymentCaptured(amount=7, correlation_id="c-1")
    done = await orch.handle_event(event)
    assert done is not None and done.status is SagaStatus.COMPLETED
    assert done.paid == 7
    again = await orch.handle_event(event)  # redelivery
    assert again is not None and again.paid == 7
    assert rec.items == ["reserve", "paid", "ship"]


async def test_timed_out_wait_is_compensated() -> None:
    repo = InMemorySagaRepository(PaymentWaitSaga)
    rec = Recorder()
    orch = SagaOrchestrator(repo, args=(rec,))
    saga = await orch.run(PaymentWaitSaga(order_id="o2", correlation_id="c-2"))
    assert saga.timeout_at is not None
    not_yet = await orch.expire(saga, now=utc_now())
    assert not_yet.status is SagaStatus.RUNNING
    expired = await orch.expire(saga, now=saga.timeout_at + timedelta(seconds=1))
    assert expired.status is SagaStatus.COMPENSATED
    assert "timed out" in (expired.error or "")
    assert rec.items == ["reserve", "release"]


async def test_action_step_timeout_compensates() -> None:
    import asyncio

    class Slow(SagaState):
        @saga_step(compensation="undo")
        async def first(self, rec: Recorder) -> None:
            rec.append("first")

        @saga_step(timeout=0.05)
        async def slow(self, rec: Recorder) -> None:
            await asyncio.sleep(1)

        async def undo(self, rec: Recorder) -> None:
            rec.append("undo")

    rec = Recorder()
    saga = await SagaOrchestrator(InMemorySagaRepository(Slow), args=(rec,)).run(Slow())
    assert saga.status is SagaStatus.COMPENSATED
    assert rec.items == ["first", "undo"]


async def test_reply_arriving_before_the_wait_is_saved_is_not_lost() -> None:
    repo = InMemorySagaRepository(PaymentWaitSaga)
    rec = Recorder()
    orch = SagaOrchestrator(repo, args=(rec,))
    saga = PaymentWaitSaga(order_id="o3", correlation_id="c-3")
    saga.start()
    await saga.reserve(rec)
    await repo.add(saga)  # step one saved; the sender has not saved the wait yet
    reply = SagaTestPaymentCaptured(amount=9, correlation_id="c-3")
    handled = await orch.handle_event(reply)
    assert handled is not None and handled.status is SagaStatus.COMPLETED
    # the sender's stale copy now tries to save the wait: it yields to the newer state
    latest = await orch.resume(saga)
    assert latest.status is SagaStatus.COMPLETED and latest.paid == 9
    assert rec.items == ["reserve", "paid", "ship"]
