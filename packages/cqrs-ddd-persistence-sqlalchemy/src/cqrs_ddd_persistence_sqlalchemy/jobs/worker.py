"""``JobWorker``: runs background jobs with bounded concurrency and a graceful shutdown.

Two numbers bound it: ``prefetch``, the jobs claimed and not settled yet (leased to this
worker: running, waiting to run, or having their outcome written), and ``concurrency``, the
handlers running at once. The worker claims in batches while fewer than ``prefetch`` jobs are
in flight (one claim statement for many jobs), and starts a claimed job as soon as fewer than
``concurrency`` handlers run. Each job runs in its own task with a heartbeat beside it (the
heartbeat extends the lease and carries cancellation requests back); the worker settles every
job exactly one way: completed, failed (retry / dead) or cancelled. It never swallows a
failure silently: each one is stored on the job (``error``) and logged. Jobs that finish while
a settle statement waits for the connection are completed together in the next one
(``complete_many``, see :mod:`.settling`), each fenced by its own lease.

It starts and stops as every worker of the library does (:class:`~..workers.WorkerLifecycle`):
``await worker.run()``, ``await worker.run_once()``, ``worker.stop()`` (await it to wait until
``run()`` has returned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_core.errors import LeaseLostError, RetryableError
from cqrs_ddd_persistence_sqlalchemy.jobs.base import ClaimedJob
from cqrs_ddd_persistence_sqlalchemy.jobs.repository import SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.jobs.running import (
    JobRun,
    RunningContext,
    fresh_lease,
    job_span,
)
from cqrs_ddd_persistence_sqlalchemy.jobs.settling import Completions
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import job_ran
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, Pin
from cqrs_ddd_persistence_sqlalchemy.workers import StopRequest, WorkerLifecycle

__all__ = ["DEFAULT_CONCURRENCY", "PREFETCH_PER_SLOT", "JobHandler", "JobWorker"]

logger = logging.getLogger(__name__)

#: ``async def handler(job, ctx) -> result``
JobHandler = Callable[[Any, JobContext], Awaitable[Any]]

#: Handlers running at once unless told (chosen by measurement: ``benchmarks/RESULTS.md``).
DEFAULT_CONCURRENCY = 10
#: Jobs claimed ahead per handler slot unless ``prefetch`` is given.
PREFETCH_PER_SLOT = 4


class JobWorker(WorkerLifecycle):
    """Claims and runs jobs from one repository.

    Args:
        repository: the job repository (its ``job_cls`` decides which types are claimed).
        handlers: job type name (or class) -> ``async def handler(job, ctx)``; types without
            a handler run ``job.execute(ctx)``.
        concurrency: handlers running at the same time (default 10).
        prefetch: jobs claimed ahead and not settled yet, at most (default: ``4 *
            concurrency``; never below ``concurrency``). Claims take up to this many jobs in
            one statement; a claimed job waits in this worker until a handler slot is free.
        poll_interval: sleep when no job is due.
        heartbeat_interval: seconds between lease extensions (default: a third of the lease).
        shutdown_timeout: on :meth:`stop`, how long running jobs may finish before they are
            cancelled and given back (without counting an attempt).
        recover_interval: seconds between ``recover_stalled()`` calls (``None``: never).

    Sizing: ``concurrency`` is what the jobs can bear at once (connections, rate limits; run
    CPU-bound jobs in more processes); ``prefetch`` a few times it for short jobs, near it for
    long ones (``queue/README.md``, "Sizing JobWorker"). A claimed job that waited too long
    has its lease extended before it starts; :meth:`stop` gives unstarted ones back at once.

    Example::

        worker = JobWorker(jobs, concurrency=8)
        task = asyncio.create_task(worker.run())
        ...
        await worker.stop()   # graceful: finishes or releases running jobs
    """

    def __init__(
        self,
        repository: SQLAlchemyBackgroundJobRepository[Any],
        *,
        handlers: Mapping[str | type[BackgroundJob], JobHandler] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        prefetch: int | None = None,
        poll_interval: float = 0.5,
        heartbeat_interval: float | None = None,
        shutdown_timeout: float = 30.0,
        recover_interval: float | None = 60.0,
    ) -> None:
        super().__init__()
        self.repository = repository
        self.handlers: dict[str, JobHandler] = {
            (k if isinstance(k, str) else k.job_type()): v for k, v in (handlers or {}).items()
        }
        self.concurrency = max(1, concurrency)
        self.prefetch = max(
            self.concurrency,
            prefetch if prefetch is not None else PREFETCH_PER_SLOT * self.concurrency,
        )
        # Handler slots: a claimed job runs once it holds one.
        self._gate = asyncio.Semaphore(self.concurrency)
        # Jobs holding a slot of ``_slots`` whose handler has not started (by object id).
        self._waiting: set[int] = set()
        self.poll_interval = poll_interval
        lease = repository.queue.lease.total_seconds()
        self.heartbeat_interval = heartbeat_interval or max(0.05, lease / 3)
        self.shutdown_timeout = shutdown_timeout
        self.recover_interval = recover_interval
        self._running: dict[asyncio.Task[None], ClaimedJob[Any]] = {}
        # The jobs in flight (by object id): claimed, outcome not written yet (<= prefetch).
        self._slots: set[int] = set()
        # The claim loop's sleep, ended early by stop() or by a job leaving a free slot.
        self._wakeup: asyncio.Future[None] | None = None
        self._woken = False
        self._completions = Completions(repository, self._held, self._free)
        self._last_recover = 0.0
        # Claims the current run may still make (``run_once``: one), ``None``: no limit.
        self._claims_left: int | None = None
        self._pin: Pin | None = None
        self.processed = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self, *, until_idle: bool = False) -> None:
        """Run until :meth:`stop` (or, with ``until_idle``, until no job is due).

        Claims and settles share one connection held for the loop (no checkout per job;
        completions that pile up share one statement); after a connection failure the loop
        waits ``poll_interval`` and holds a new one. Heartbeats use pool connections.
        """
        await self._serve(claims=None, until_idle=until_idle)

    async def run_once(self) -> int:
        """Claim once (up to ``prefetch`` due jobs), run those jobs to the end; return how
        many were settled."""
        before = self.processed
        await self._serve(claims=1, until_idle=True)
        return self.processed - before

    async def run_until_idle(self) -> int:
        """Process due jobs until none is left; return how many were settled."""
        before = self.processed
        await self.run(until_idle=True)
        return self.processed - before

    def stop(self) -> StopRequest:
        """Stop claiming, let running jobs finish (up to ``shutdown_timeout``) and give back
        the rest. ``await worker.stop()`` returns once the loop has exited; a plain
        ``worker.stop()`` (a signal handler) only asks."""
        request = super().stop()
        self._wake()
        return request

    async def _serve(self, *, claims: int | None, until_idle: bool) -> None:
        """The loop of :meth:`run` and :meth:`run_once` (``claims``: how many claims, ``None``
        for no limit)."""
        async with self.running():
            loop = asyncio.get_running_loop()
            self._last_recover = loop.time()
            self._claims_left = claims
            try:
                while not self.stopping:
                    try:
                        async with self.repository.pinned() as pin:
                            self._pin = pin
                            try:
                                # Jobs run and settle concurrently: nothing inherits the pin;
                                # the loop and the settles borrow it one at a time.
                                with DurableQueue.unpinned():
                                    if await self._loop(until_idle=until_idle):
                                        return
                            finally:
                                self._pin = None
                    except RetryableError:
                        # The database is briefly unavailable: say so, wait, try again.
                        logger.warning("claiming jobs failed; retrying", exc_info=True)
                        await self.sleep(self.poll_interval)
            finally:
                await self._drain()

    async def _loop(self, *, until_idle: bool) -> bool:
        """Claim and start jobs until stopped (``False``) or idle (``True``)."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            if self._pin is not None and self._pin.lost:
                return False  # the held connection is gone: hold a new one (see _serve)
            self._woken = False  # a job finishing from here on ends the sleep below
            every = self.recover_interval
            if every and loop.time() - self._last_recover >= every:
                self._last_recover = loop.time()
                await self.repository.recover_stalled()
            claimed: list[ClaimedJob[Any]] = []
            left = self._claims_left
            free = self.prefetch - len(self._slots) if left is None or left > 0 else 0
            # Claim in batches: once half of ``prefetch`` is free, or when no claimed job is
            # left waiting for a handler slot (the handlers would run dry).
            due = free > 0 and (2 * free >= self.prefetch or not self._waiting)
            if due:
                async with self._held():
                    # Counted again once the connection is ours: jobs that settled while the
                    # claim waited for it left free slots too (one claim for all of them).
                    free = self.prefetch - len(self._slots)
                    claimed = await self.repository.claim(free)
                if left is not None:
                    self._claims_left = left - 1
            if claimed:
                ids = list(map(id, claimed))
                self._slots.update(ids)
                self._waiting.update(ids)
                for job in claimed:
                    task = asyncio.create_task(self._run_one(job))
                    self._running[task] = job
                    task.add_done_callback(self._running.pop)
                continue
            if until_idle and not self._slots:
                return True
            await self._sleep(self.poll_interval if due else None)
        return False

    def _wake(self) -> None:
        self._woken = True
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self, seconds: float | None) -> None:
        """Until a job finishes, :meth:`stop`, or ``seconds`` pass (``None``: no limit)."""
        if self._woken:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._wakeup = waiter
        timer = loop.call_later(seconds, self._wake) if seconds is not None else None
        try:
            await waiter
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def _held(self) -> AbstractAsyncContextManager[None]:
        """The worker's held connection for this task's next statement (or the pool)."""
        pin = self._pin
        return pin.borrow() if pin is not None else contextlib.nullcontext()

    async def _drain(self) -> None:
        if self._running:
            await self._give_back_waiting()
        if self._running:
            await self._drain_jobs()
        # Settle statements still running for jobs cancelled meanwhile.
        await self._completions.wait()

    async def _give_back_waiting(self) -> None:
        """Stopping: the claimed jobs whose handler has not started are given back at once
        (one fenced release, no attempt counted), not run and not left to their leases."""
        waiting = [(t, job) for t, job in self._running.items() if id(job) in self._waiting]
        if not waiting:
            return
        for task, _ in waiting:
            task.cancel()
        await asyncio.gather(*(t for t, _ in waiting), return_exceptions=True)
        jobs = [job for _, job in waiting]
        try:
            await self.repository.release(jobs)
        except Exception:
            # Their leases expire and they are claimed again: delayed, never lost.
            logger.exception("shutdown: could not give back %d waiting job(s)", len(jobs))
        for job in jobs:
            self._free(job)

    async def _drain_jobs(self) -> None:
        tasks = list(self._running)
        _, late = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
        leftovers = [self._running[t] for t in late if t in self._running]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if leftovers:
            logger.warning("shutdown: giving back %d unfinished job(s)", len(leftovers))
            await self.repository.release(leftovers)

    # -- one job ---------------------------------------------------------------------------
    async def _run_one(self, claimed: ClaimedJob[Any]) -> None:
        """Wait for a handler slot, then run ``claimed``. A job still waiting when the worker
        stops is given back by :meth:`_give_back_waiting` (which cancels this task)."""
        gate = self._gate
        await gate.acquire()
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        try:
            if self.stopping:
                # Not started yet: stays waiting until the shutdown gives it back.
                leave()
                await asyncio.get_running_loop().create_future()
            self._waiting.discard(id(claimed))
            with job_span(self.repository.queue.binding.engine, claimed):
                await self._run_claimed(claimed, leave)
        finally:
            leave()

    async def _run_claimed(self, claimed: ClaimedJob[Any], leave: Callable[[], None]) -> None:
        """Run one job and settle it; ``leave()`` frees its handler slot (called once the
        handler is done: the next job runs while this one's outcome is written)."""
        repo = self.repository
        try:
            if not await fresh_lease(self.repository, claimed, self.heartbeat_interval, self._held):
                return
            if claimed.cancel_requested:
                async with self._held():
                    await repo.mark_cancelled(claimed)
                return
            job = claimed.job
            handler = self.handlers.get(claimed.job_type)
            if job is None:
                async with self._held():
                    await repo.fail(claimed, f"unknown job type {claimed.job_type!r}", retry=False)
                return
            ctx = RunningContext(repo, claimed)
            # The handler runs in this task (no task of its own): the heartbeat interrupts it
            # by cancelling this task, saying why in ``run.stopped``. The heartbeat task
            # starts only once the first beat is due: most jobs finish before that.
            task = asyncio.current_task()
            assert task is not None
            run = JobRun(task)
            timer = asyncio.get_running_loop().call_later(
                self.heartbeat_interval, run.start_beat, ctx, self.heartbeat_interval
            )
            started = time.monotonic()
            try:
                result = await (handler(job, ctx) if handler is not None else job.execute(ctx))
            except asyncio.CancelledError:
                run.running = False
                job_ran(claimed.job_type, time.monotonic() - started, "interrupted")
                if run.stopped is None or task.uncancel() > 0:
                    raise  # shutdown: the worker gives the job back
                if run.stopped == "cancelled":
                    async with self._held():
                        await repo.mark_cancelled(claimed)
                    return
                raise LeaseLostError(f"job {claimed.id}: lease lost while running") from None
            except Exception as exc:
                run.running = False
                job_ran(claimed.job_type, time.monotonic() - started, "failed")
                logger.warning("job %s (%s) failed", claimed.id, claimed.job_type, exc_info=True)
                async with self._held():
                    await repo.fail(claimed, f"{type(exc).__name__}: {exc}")
                return
            finally:
                run.running = False
                timer.cancel()
                beat = run.beat
                if beat is not None:
                    beat.cancel()
                    with contextlib.suppress(asyncio.CancelledError, LeaseLostError):
                        await beat
            outcome = "cancelled" if ctx.cancelled else "completed"
            job_ran(claimed.job_type, time.monotonic() - started, outcome)
            if run.stopped is not None:
                task.uncancel()  # the handler swallowed the heartbeat's cancellation
                if run.stopped == "lost":
                    raise LeaseLostError(f"job {claimed.id}: lease lost while running")
            if ctx.cancelled:
                async with self._held():
                    await repo.mark_cancelled(claimed)
            else:
                leave()
                await self._completions.complete(claimed, result)
        except LeaseLostError:
            logger.warning("job %s: lease lost; another worker owns it now", claimed.id)
        except Exception:
            # Settling failed (database unavailable...): the lease expires and the job is
            # claimed again, so it is retried, never lost.
            logger.exception("job %s: could not record its outcome", claimed.id)
        finally:
            self.processed += 1
            self._free(claimed)

    def _free(self, claimed: ClaimedJob[Any]) -> None:
        """``claimed``'s outcome is written (or will not be): its slot is free."""
        if id(claimed) in self._slots:
            self._slots.discard(id(claimed))
            self._wake()
