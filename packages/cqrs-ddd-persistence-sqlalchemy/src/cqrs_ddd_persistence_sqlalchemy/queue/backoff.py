"""Retry delays of durable queues: the library's one :class:`Backoff` (from
``cqrs_ddd_advanced_core.jobs``), with the queue's default spread."""

from __future__ import annotations

from cqrs_ddd_advanced_core.jobs import Backoff

__all__ = ["DEFAULT_BACKOFF", "Backoff"]

#: Rows that failed together spread their retries over ±20 %.
DEFAULT_BACKOFF = Backoff(base=1.0, factor=2.0, maximum=300.0, jitter=0.2)
