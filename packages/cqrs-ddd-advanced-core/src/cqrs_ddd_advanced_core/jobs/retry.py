"""Exponential backoff between attempts (shared by jobs and scheduled commands)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delay before the next attempt: ``base * factor ** (attempt - 1)``, capped.

    ``jitter`` adds up to that fraction of the delay at random, so workers that failed together
    do not retry together.

    Example::

        Backoff(base=2.0, factor=2.0, maximum=60.0).delay(3)  # timedelta(seconds=8)
    """

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.0

    def seconds(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based)."""
        wait = min(self.maximum, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter > 0:
            wait += random.uniform(0, wait * self.jitter)
        return wait

    def delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=self.seconds(attempt))
