"""Exponential backoff between attempts (shared by jobs and scheduled commands)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the next attempt: ``base * factor ** (attempt - 1)`` seconds, capped at
    ``maximum``, then spread by ``±jitter`` (a fraction of the delay) so that work that failed
    together does not retry together. The one backoff of the library: jobs, scheduled
    commands, the outbox and every durable queue use it.

    Example::

        Backoff(base=2.0, factor=2.0, maximum=60.0).delay(3)  # timedelta(seconds=8)
        Backoff(base=1.0, jitter=0.2).seconds(3)  # 3.2 .. 4.8
    """

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.0

    def seconds(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based)."""
        wait = min(self.maximum, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter <= 0:
            return wait
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, wait * (1.0 + spread))

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> timedelta:
        """:meth:`seconds` as a ``timedelta``."""
        return timedelta(seconds=self.seconds(attempt, rng=rng))

    def upper_bound(self, attempt: int) -> float:
        """The longest wait :meth:`seconds` can return for ``attempt``."""
        wait = min(self.maximum, self.base * self.factor ** max(0, attempt - 1))
        return wait * (1.0 + max(0.0, self.jitter))
