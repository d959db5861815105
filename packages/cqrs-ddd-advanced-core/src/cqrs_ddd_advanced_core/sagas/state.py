"""``SagaState``: the persisted state of a long-running process, and its step log.

A saga is a pydantic model (an aggregate root, so it carries an optimistic-concurrency
version). Your fields are the process data; the library's fields record where the process is:
which steps completed, which were compensated, what it waits for and until when.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from cqrs_ddd_advanced_core.sagas.step import StepSpec, step_spec
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.events import utc_now
from cqrs_ddd_core.errors import DomainError

__all__ = ["SAGA_FIELDS", "SagaState", "SagaStatus"]


class SagaStatus(StrEnum):
    """Where a saga is. Stored as its string value."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """RUNNING or COMPENSATING: work remains and some worker should be doing it."""
        return self in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


_TERMINAL = frozenset({SagaStatus.COMPENSATED, SagaStatus.COMPLETED, SagaStatus.FAILED})

_STEPS_CACHE: dict[type, tuple[StepSpec, ...]] = {}


def _new_id() -> str:
    return str(uuid.uuid4())


class SagaState(AggregateRoot[str]):
    """Base class of sagas.

    Example::

        class OrderFulfillmentSaga(SagaState):
            order_id: str
            payment_id: str | None = None

            @saga_step(compensation="cancel_payment")
            async def process_payment(self, payment_service):
                self.payment_id = await payment_service.charge(self.order_id)

            async def cancel_payment(self, payment_service):
                await payment_service.refund(self.payment_id)

        saga = OrderFulfillmentSaga(order_id="123")      # id generated
        await saga.process_payment(payment_service)      # runs and logs the step
        await saga_repo.add(saga, uow=uow)

    The saga type stored in the database is ``__saga_type__`` (the class name by default);
    lookups use the same name.
    """

    __saga_type__: ClassVar[str | None] = None

    id: str = Field(default_factory=_new_id)
    correlation_id: str | None = None
    status: SagaStatus = SagaStatus.PENDING
    completed_steps: list[str] = Field(default_factory=list)
    compensated_steps: list[str] = Field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    waiting_for: str | None = None
    timeout_at: datetime | None = None
    handled_event_ids: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)

    # -- class-level description -----------------------------------------------------------
    @classmethod
    def saga_type(cls) -> str:
        """The name this saga class is stored and looked up under."""
        return cls.__saga_type__ or cls.__name__

    @classmethod
    def steps(cls) -> tuple[StepSpec, ...]:
        """The steps in execution order (definition order, base classes first)."""
        cached = _STEPS_CACHE.get(cls)
        if cached is None:
            found: dict[str, StepSpec] = {}
            for klass in reversed(cls.__mro__):
                for name, attr in vars(klass).items():
                    spec = step_spec(attr)
                    if spec is not None:
                        found[name] = spec
            cached = tuple(sorted(found.values(), key=lambda s: s.order))
            for spec in cached:
                if spec.compensation is not None and not callable(
                    getattr(cls, spec.compensation, None)
                ):
                    raise DomainError(
                        f"{cls.__name__}.{spec.name}: compensation {spec.compensation!r} "
                        "is not a method of the saga"
                    )
            _STEPS_CACHE[cls] = cached
        return cached

    # -- state queries ---------------------------------------------------------------------
    def next_step(self) -> StepSpec | None:
        """The first step that has not completed yet."""
        done = set(self.completed_steps)
        for spec in self.steps():
            if spec.name not in done:
                return spec
        return None

    def next_step_name(self) -> str | None:
        spec = self.next_step()
        return spec.name if spec is not None else None

    @property
    def is_finished(self) -> bool:
        return self.status.is_terminal

    @property
    def is_suspended(self) -> bool:
        """Waiting for an event."""
        return self.status is SagaStatus.RUNNING and self.waiting_for is not None

    def has_handled(self, event_id: str) -> bool:
        return event_id in self.handled_event_ids

    # -- transitions -----------------------------------------------------------------------
    def start(self) -> None:
        """PENDING -> RUNNING (no-op otherwise)."""
        if self.status is SagaStatus.PENDING:
            self.status = SagaStatus.RUNNING
            self._touch()

    def suspend_for(self, spec: StepSpec, now: datetime | None = None) -> None:
        """Wait at the event step ``spec``; its timeout starts now."""
        now = now or utc_now()
        self.waiting_for = spec.on_event
        self.timeout_at = now + spec.timeout if spec.timeout is not None else None
        self._touch(now)

    def mark_event_handled(self, event_id: str, *, keep: int = 1000) -> None:
        """Remember ``event_id`` so a redelivery is ignored (bounded to the last ``keep``)."""
        if event_id not in self.handled_event_ids:
            self.handled_event_ids.append(event_id)
            del self.handled_event_ids[:-keep]

    def fail(self, error: str, *, step: str | None = None) -> None:
        """Start compensating: the process cannot complete."""
        if self.status.is_terminal:
            return
        self.failed_step = step or self.failed_step
        self.error = error
        self.waiting_for = None
        self.timeout_at = None
        self.status = SagaStatus.COMPENSATING
        self._touch()

    def complete_if_done(self) -> None:
        if self.status is SagaStatus.RUNNING and self.next_step() is None:
            self.status = SagaStatus.COMPLETED
            self._touch()

    def _touch(self, now: datetime | None = None) -> None:
        self.updated_at = now or utc_now()

    # -- running ---------------------------------------------------------------------------
    async def run_step(
        self, spec: StepSpec, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        """Run step ``spec`` (by name, so overrides apply) with ``args``/``kwargs``."""
        method = getattr(self, spec.name)
        return await method(*args, **(kwargs or {}))

    async def _run_step(
        self,
        spec: StepSpec,
        fn: Callable[..., Awaitable[Any]],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Any:
        if self.status in (SagaStatus.COMPENSATING, SagaStatus.COMPENSATED, SagaStatus.FAILED):
            raise DomainError(f"saga {self.id} is {self.status.value}: no step may run")
        self.start()
        try:
            if spec.timeout is not None and spec.on_event is None:
                async with asyncio.timeout(spec.timeout.total_seconds()):
                    result = await fn(self, *args, **kwargs)
            else:
                result = await fn(self, *args, **kwargs)
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}", step=spec.name)
            raise
        if spec.name not in self.completed_steps:
            self.completed_steps.append(spec.name)
        self.waiting_for = None
        self.timeout_at = None
        self._touch()
        self.complete_if_done()
        return result

    def next_compensation(self) -> StepSpec | None:
        """The latest completed step whose compensation has not run yet."""
        specs = {s.name: s for s in self.steps()}
        for name in reversed(self.completed_steps):
            if name not in self.compensated_steps:
                return specs.get(name) or StepSpec(name, None, None, None, -1)
        return None

    async def compensate_one(self, args: Sequence[Any] = (), kwargs: Any = None) -> bool:
        """Run the next pending compensation; return False when none is left.

        A failing compensation leaves the saga FAILED (it needs a human) and re-raises.
        """
        if self.status is not SagaStatus.COMPENSATING:
            self.fail(self.error or "compensation requested")
        spec = self.next_compensation()
        if spec is None:
            self.status = SagaStatus.COMPENSATED
            self._touch()
            return False
        if spec.compensation is not None:
            try:
                await getattr(self, spec.compensation)(*args, **(kwargs or {}))
            except Exception as exc:
                self.status = SagaStatus.FAILED
                self.error = (
                    f"compensation {spec.compensation!r} failed: {type(exc).__name__}: {exc}"
                )
                self._touch()
                raise
        self.compensated_steps.append(spec.name)
        self._touch()
        return True

    async def compensate(self, *args: Any, **kwargs: Any) -> None:
        """Run every pending compensation, latest step first, then become COMPENSATED."""
        while await self.compensate_one(args, kwargs):
            pass


#: Fields of :class:`SagaState` itself (stored in columns); the rest is the saga's data.
SAGA_FIELDS: frozenset[str] = frozenset(SagaState.model_fields)
