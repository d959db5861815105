"""How ``JobWorker`` writes the completions of finished jobs on its one connection.

With no settle under way a finished job settles alone, in its own task (one statement). Jobs
finishing while a settle is under way queue their completions; one settle task takes every
completion queued by the time it holds the worker's connection and writes them in one statement
(``complete_many``: one round trip and one commit on PostgreSQL), each fenced by its own lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from cqrs_ddd_core.errors import LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.execution.pinning import unpinned
from cqrs_ddd_persistence_sqlalchemy.jobs.base import ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.jobs.repository import SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.jobs.statements import encode_result

__all__ = ["Completions"]

_Queued = tuple[ClaimedJob[Any], str, asyncio.Future[None]]


def _lost(claimed: ClaimedJob[Any]) -> LeaseLostError:
    return LeaseLostError(f"job {claimed.id}: the lease was lost to another worker")


class Completions:
    """The completions of one worker's finished jobs (module docstring).

    Args:
        repository: where the completions are written.
        held: the worker's connection for the next statement (an async context manager).
        free: called once a job's outcome is written: its slot is free.
    """

    def __init__(
        self,
        repository: SQLAlchemyBackgroundJobRepository[Any],
        held: Callable[[], AbstractAsyncContextManager[None]],
        free: Callable[[ClaimedJob[Any]], None],
    ) -> None:
        self._repository = repository
        self._held = held
        self._free = free
        self._queued: list[_Queued] = []
        self._settling: asyncio.Task[None] | None = None  # will take the queued ones
        self._tasks: set[asyncio.Task[None]] = set()
        self._alone = False  # a job is settling its own completion

    async def complete(self, claimed: ClaimedJob[Any], result: Any) -> None:
        """Record ``claimed`` as completed with ``result``. Raises ``LeaseLostError`` if the
        lease was lost."""
        # Encoded here: a result the codec refuses fails this job's settle, not the batch's.
        encoded = encode_result(result)
        if not self._alone and self._settling is None and not self._queued:
            self._alone = True
            try:
                async with self._held():
                    lost = await self._repository._complete_encoded([(claimed, encoded)])
                    # The completions queued meanwhile go next, then the claim for the
                    # slots they free (the connection is handed over in request order).
                    self._end_alone()
                    self._free(claimed)
            finally:
                self._end_alone()
            if lost:
                raise _lost(claimed)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((claimed, encoded, done))
        if self._settling is None and not self._alone:
            self._start()
        await done

    async def wait(self) -> None:
        """Until the settle statements under way have ended (shutdown)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _end_alone(self) -> None:
        if self._alone:
            self._alone = False
            if self._queued and self._settling is None:
                self._start()

    def _start(self) -> None:
        # ``_start`` may run inside a borrow of the worker's connection (a job settling alone
        # hands over to the queued ones): the settle task must not inherit that borrow's pin
        # from this task's context — it borrows the connection itself, under its lock. An
        # inherited pin used after the borrow ended ran statements on a connection another
        # task was using (asyncpg: "another operation is in progress").
        with unpinned():
            task = self._settling = asyncio.create_task(self._settle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Queued]:
        batch = self._queued
        self._queued = []
        self._settling = None  # completions from now on go to the next statement
        return batch

    async def _settle(self) -> None:
        batch: list[_Queued] = []
        try:
            async with self._held():
                batch = self._take()
                lost = await self._repository._complete_encoded([(c, r) for c, r, _ in batch])
                # Outcomes and free slots before the loop's claim can have the connection.
                lost_ids = {c.claim.id for c in lost}
                for claimed, _, done in batch:
                    self._free(claimed)
                    if done.done():
                        continue  # the job's task was cancelled (shutdown) meanwhile
                    if claimed.claim.id in lost_ids:
                        done.set_exception(_lost(claimed))
                    else:
                        done.set_result(None)
        except Exception as exc:  # each job reports it (its outcome was not recorded)
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
        except BaseException:
            for _, _, done in batch or self._take():
                done.cancel()
            raise
