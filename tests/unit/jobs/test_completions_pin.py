"""A settle task started inside a borrow of the worker's connection does not inherit the pin.

A job settling alone hands over to the completions queued meanwhile by starting the settle task
while it still holds the worker's connection. Tasks copy their creator's context variables, so
that task used to start with the borrow's pin and, once the worker's pin was gone (the loop
reconnecting after a lost connection), ran its statement on the old connection with no lock
(asyncpg: "another operation is in progress").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from cqrs_ddd_persistence_sqlalchemy.execution.pinning import HeldPin, pinned_executor
from cqrs_ddd_persistence_sqlalchemy.jobs.settling import Completions


class _Claimed:
    def __init__(self, n: int) -> None:
        self.id = f"j-{n}"
        self.claim = self


class _Repository:
    """Records, per completion statement, the pin the statement would run on."""

    def __init__(self, owner: object, gate: asyncio.Event) -> None:
        self.owner = owner
        self.gate = gate
        self.started = asyncio.Event()
        self.pins: list[Any] = []

    async def _complete_encoded(self, items: list[Any], uow: Any = None) -> list[Any]:
        self.pins.append(pinned_executor(self.owner))
        if len(self.pins) == 1:
            self.started.set()
            await self.gate.wait()  # the first job settles alone until the second queues
        return []


async def test_the_settle_task_of_queued_completions_starts_unpinned() -> None:
    owner = object()
    pin = HeldPin(owner, object())  # type: ignore[arg-type]
    gate = asyncio.Event()
    repo = _Repository(owner, gate)
    borrows = 0

    @contextlib.asynccontextmanager
    async def held() -> AsyncIterator[None]:
        # The worker's connection the first time; gone afterwards (its loop reconnecting).
        nonlocal borrows
        borrows += 1
        if borrows == 1:
            async with pin.borrow():
                yield
        else:
            yield

    completions = Completions(repo, held, lambda claimed: None)  # type: ignore[arg-type]
    first = asyncio.create_task(completions.complete(_Claimed(1), {"ok": 1}))  # type: ignore[arg-type]
    await asyncio.wait_for(repo.started.wait(), 5)
    second = asyncio.create_task(completions.complete(_Claimed(2), {"ok": 2}))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    # the lone settle ran on the borrowed connection; the queued one's statement ran on no
    # inherited pin (the pool), since the worker's connection was gone by then
    assert repo.pins[0] is not None
    assert repo.pins[1:] == [None]
