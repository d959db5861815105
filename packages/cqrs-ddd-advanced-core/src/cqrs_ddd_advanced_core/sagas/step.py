"""``@saga_step``: declare a saga step, its compensation and what it waits for.

Steps run in the order they are defined in the class body (base classes first). A step is an
``async`` method; calling it directly runs it and records it in the saga's log, exactly as the
orchestrator does, so the seed's hand-driven style works::

    class OrderFulfillmentSaga(SagaState):
        order_id: str
        payment_id: str | None = None

        @saga_step(compensation="cancel_payment")
        async def process_payment(self, payment_service):
            self.payment_id = await payment_service.charge(self.order_id)

        async def cancel_payment(self, payment_service):
            await payment_service.refund(self.payment_id)

A step with ``on_event="PaymentCaptured"`` is event-driven: the orchestrator suspends the saga
when it reaches it and resumes it with the matching event (routed by ``correlation_id``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

if TYPE_CHECKING:
    from cqrs_ddd_advanced_core.sagas.state import SagaState

__all__ = ["StepSpec", "saga_step", "step_spec"]

P = ParamSpec("P")
R = TypeVar("R")

_ORDER = itertools.count()
_ATTR = "__saga_step__"


@dataclass(frozen=True)
class StepSpec:
    """What ``@saga_step`` recorded about one step."""

    name: str
    compensation: str | None
    on_event: str | None
    timeout: timedelta | None
    order: int


def step_spec(func: object) -> StepSpec | None:
    """The :class:`StepSpec` of a decorated method, or ``None``."""
    spec = getattr(func, _ATTR, None)
    return spec if isinstance(spec, StepSpec) else None


@overload
def saga_step(func: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


@overload
def saga_step(
    *,
    compensation: str | None = None,
    on_event: str | type | None = None,
    timeout: timedelta | float | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def saga_step(
    func: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    compensation: str | None = None,
    on_event: str | type | None = None,
    timeout: timedelta | float | None = None,
) -> Any:
    """Mark an ``async`` method of a :class:`SagaState` subclass as a step.

    Args:
        compensation: name of the method that undoes this step; it receives the same
            arguments as the step (for event steps: the same dependencies, without the event).
        on_event: an event type (name or class) the step waits for; the step receives the
            event as its first argument.
        timeout: how long the saga may wait at this step (event steps) before it is compensated.

    Usable bare (``@saga_step``) or with arguments (``@saga_step(compensation="undo")``).
    """
    event_name: str | None
    if on_event is None or isinstance(on_event, str):
        event_name = on_event
    else:
        event_name = str(getattr(on_event, "__event_type__", on_event.__name__))
    if isinstance(timeout, int | float):
        timeout = timedelta(seconds=timeout)

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        spec = StepSpec(fn.__name__, compensation, event_name, timeout, next(_ORDER))

        @functools.wraps(fn)
        async def run_step(*args: P.args, **kwargs: P.kwargs) -> R:
            saga = cast("SagaState", args[0])
            return cast(R, await saga._run_step(spec, fn, args[1:], kwargs))

        setattr(run_step, _ATTR, spec)
        return run_step

    if func is not None:
        return decorate(func)
    return decorate
