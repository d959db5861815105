"""The demo's wiring and its check: :class:`Demo`, :class:`StepResult`, :func:`expect`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.cli.demo.domain import (
    Order,
    OrderModel,
)
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)

__all__ = [
    "Demo",
    "DemoCheckFailed",
    "Step",
    "StepResult",
    "expect",
    "horizon_wait",
    "visible_events",
]


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


def horizon_wait(seconds: float) -> str:
    return f" (waited {seconds:.1f} s for the commit-safe horizon)" if seconds >= 0.05 else ""


# -- 1. aggregates through the unit of work --------------------------------------------------
