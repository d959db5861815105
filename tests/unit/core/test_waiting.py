"""``wait_until_set``: an event wait with a timeout that never loses a cancellation.

On Python 3.11 ``asyncio.wait_for(event.wait(), t)`` swallows a cancellation that arrives in
the same event-loop step as the event is set; a subscriber or worker loop around it then never
ends after ``task.cancel()`` (seen: the never-skip test hung with its subscriber polling).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from cqrs_ddd_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.waiting import wait_until_set


async def test_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert await wait_until_set(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_until_set(event, None) is True
    assert await wait_until_set(event, 0) is True  # already set


async def _cancelled_with_a_wake_up(
    loop_body: Callable[[asyncio.Event], Awaitable[None]],
) -> bool:
    """Whether a task looping on ``loop_body`` ends when cancelled in the step that wakes it."""
    event = asyncio.Event()

    async def forever() -> None:
        while True:
            event.clear()
            await loop_body(event)

    task = asyncio.create_task(forever())
    await asyncio.sleep(0.01)  # waiting on the event now
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    return task.cancelled()


async def test_a_cancellation_in_the_step_of_the_wake_up_is_not_lost() -> None:
    async def with_helper(event: asyncio.Event) -> None:
        await wait_until_set(event, 5)

    assert await _cancelled_with_a_wake_up(with_helper)


async def test_an_in_memory_subscriber_cancelled_as_an_append_wakes_it_ends() -> None:
    store = InMemoryEventStore()
    seen: list[str] = []

    async def tail() -> None:
        async for event in store.subscribe(poll_interval=5):
            seen.append(event.event_type)

    task = asyncio.create_task(tail())
    await asyncio.sleep(0.01)  # caught up, waiting for a change
    await store.append(StoredEvent(event_type="Tick", aggregate_id="s-1"))  # wakes it...
    task.cancel()  # ...in the same step
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert done and task.cancelled(), "the subscriber kept running after cancel()"
