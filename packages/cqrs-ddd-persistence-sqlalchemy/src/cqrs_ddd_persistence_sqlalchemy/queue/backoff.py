"""Retry delays: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base * factor ** (attempt - 1)`` seconds, capped at ``maximum``, then spread by
    ``±jitter`` (a fraction) so that rows that failed together do not retry together.

    Example::

        Backoff(base=1.0, factor=2.0, maximum=300.0, jitter=0.2).delay(3)  # ~4s (3.2 .. 4.8)
    """

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.2

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based)."""
        raw = min(self.maximum, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter <= 0:
            return raw
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, raw * (1.0 + spread))

    def upper_bound(self, attempt: int) -> float:
        """The longest delay :meth:`delay` can return for ``attempt``."""
        return min(self.maximum, self.base * self.factor ** max(0, attempt - 1)) * (
            1.0 + max(0.0, self.jitter)
        )
