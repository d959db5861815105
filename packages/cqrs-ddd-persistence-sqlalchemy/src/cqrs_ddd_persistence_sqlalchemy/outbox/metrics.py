"""What an outbox relay counts: ``OutboxRelay.metrics``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RelayMetrics"]


@dataclass
class RelayMetrics:
    """Counters since start, and the outbox state at the last stats refresh."""

    claimed: int = 0
    published: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0
    released: int = 0
    batches: int = 0
    errors: int = 0
    #: Due or leased messages not yet published (last refresh).
    pending: int = 0
    #: Seconds the oldest due, unclaimed message has waited (last refresh).
    lag_seconds: float = 0.0
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        """The metrics as a plain dict (for logs and health endpoints)."""
        return asdict(self)
