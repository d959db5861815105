"""The demo scenario: one order-fulfilment story told through every component.

Each step is an ``async`` function taking the :class:`Demo` wiring and returning a
:class:`StepResult` — what it did, in a few lines. A step checks its own outcome with
:func:`expect`; a failed expectation stops the demo with a one-line error.
"""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.cli.demo.base import (
    Demo,
    DemoCheckFailed,
    Step,
    StepResult,
    expect,
)
from cqrs_ddd_persistence_sqlalchemy.cli.demo.steps_advanced import (
    event_sourcing,
    jobs,
    projection,
    scheduled,
)
from cqrs_ddd_persistence_sqlalchemy.cli.demo.steps_core import (
    aggregates,
    event_store,
    outbox,
    sagas,
)

__all__ = ["STEPS", "Demo", "DemoCheckFailed", "StepResult", "expect"]


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
