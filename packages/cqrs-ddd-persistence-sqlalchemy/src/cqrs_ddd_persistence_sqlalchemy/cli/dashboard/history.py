"""The last minutes of a few numbers, sampled in-process while the dashboard runs.

Nothing is stored in the database: a dashboard started now shows the minutes since it started.
:class:`Sampler` takes a :class:`~.snapshot.Snapshot` every ``every_s`` seconds and keeps the
:data:`METRICS` of the last ``window_s`` seconds in :class:`History`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cqrs_ddd_advanced_core.jobs import JobStatus
from cqrs_ddd_core.waiting import wait_until_set
from cqrs_ddd_persistence_sqlalchemy.cli.dashboard.snapshot import Snapshot

__all__ = ["METRICS", "History", "Metric", "Sampler"]

log = logging.getLogger("cqrs_ddd.dashboard")


@dataclass(frozen=True, slots=True)
class Metric:
    """One charted number: how to read it from a snapshot (``None``: component absent)."""

    key: str
    title: str
    unit: str
    read: Callable[[Snapshot], float | None]


def _outbox_pending(s: Snapshot) -> float | None:
    return s.outbox.stats.pending if s.outbox else None


def _outbox_age(s: Snapshot) -> float | None:
    return s.outbox.stats.lag_seconds if s.outbox else None


def _outbox_dead(s: Snapshot) -> float | None:
    return s.outbox.stats.dead if s.outbox else None


def _jobs_waiting(s: Snapshot) -> float | None:
    return s.jobs.by_status.get(JobStatus.PENDING, 0) if s.jobs else None


def _jobs_running(s: Snapshot) -> float | None:
    return s.jobs.by_status.get(JobStatus.RUNNING, 0) if s.jobs else None


def _jobs_stalled(s: Snapshot) -> float | None:
    return s.jobs.stalled if s.jobs else None


def _projection_lag(s: Snapshot) -> float | None:
    if s.projections is None:
        return None
    return max((lag.behind for lag in s.projections.lags), default=0)


def _held_events(s: Snapshot) -> float | None:
    return s.event_store.horizon.invisible_events if s.event_store else None


METRICS: tuple[Metric, ...] = (
    Metric("outbox_pending", "outbox pending", "", _outbox_pending),
    Metric("outbox_age", "outbox oldest due", "s", _outbox_age),
    Metric("outbox_dead", "outbox dead letters", "", _outbox_dead),
    Metric("jobs_waiting", "jobs waiting", "", _jobs_waiting),
    Metric("jobs_running", "jobs running", "", _jobs_running),
    Metric("jobs_stalled", "jobs stalled", "", _jobs_stalled),
    Metric("projection_lag", "largest projection lag (events)", "", _projection_lag),
    Metric("held_events", "events above the horizon", "", _held_events),
)


class History:
    """Samples of :data:`METRICS` over a sliding window (oldest dropped first)."""

    def __init__(self, *, window_s: float, every_s: float) -> None:
        self.window_s = window_s
        self.every_s = every_s
        self._samples: deque[tuple[float, dict[str, float | None]]] = deque(
            maxlen=math.ceil(window_s / every_s) + 1
        )
        #: The error of the last sample, when it failed (shown on the page).
        self.last_error: str | None = None

    def add(self, snapshot: Snapshot, at: float | None = None) -> None:
        at = time.time() if at is None else at
        self._samples.append((at, {m.key: m.read(snapshot) for m in METRICS}))
        self.last_error = None

    def __len__(self) -> int:
        return len(self._samples)

    def series(self, key: str) -> list[tuple[float, float]]:
        """``(unix time, value)`` of ``key``, oldest first (samples without it left out)."""
        return [(at, v) for at, values in self._samples if (v := values.get(key)) is not None]


class Sampler:
    """Adds a snapshot to a :class:`History` every ``history.every_s`` seconds until stopped.

    A failed sample (database unreachable) is logged and shown on the page, and the next one is
    tried at the next tick: the dashboard outlives a database restart.
    """

    def __init__(self, take: Callable[[], Awaitable[Snapshot]], history: History) -> None:
        self._take = take
        self.history = history
        self._stop = asyncio.Event()

    async def sample(self) -> None:
        try:
            snapshot = await self._take()
        except Exception as exc:  # shown on the page and logged; the next tick tries again
            self.history.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("dashboard sample failed: %s", self.history.last_error)
            return
        self.history.add(snapshot)

    async def run(self) -> None:
        while not self._stop.is_set():
            await self.sample()
            await wait_until_set(self._stop, self.history.every_s)  # or the next sample is due

    def stop(self) -> None:
        self._stop.set()
