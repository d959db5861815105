"""When to take a snapshot of an event-sourced aggregate (persistence-free)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["EveryNEvents", "NeverSnapshot", "SnapshotStrategy"]


@runtime_checkable
class SnapshotStrategy(Protocol):
    """Decides after a save whether the aggregate's new state deserves a snapshot."""

    def should_snapshot(
        self,
        *,
        previous_version: int,
        new_version: int,
        last_snapshot_version: int | None = None,
    ) -> bool: ...


class EveryNEvents:
    """Snapshot whenever a save crosses a multiple of ``n`` events.

    Counted by crossing, not by ``version % n == 0``: a save that moves a stream from version 8
    to 12 with ``n=10`` snapshots (the modulo test never sees version 10 and would miss it)::

        strategy = EveryNEvents(10)
        strategy.should_snapshot(previous_version=8, new_version=12)  # True
        strategy.should_snapshot(previous_version=12, new_version=15)  # False
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("EveryNEvents needs n >= 1")
        self.n = n

    def should_snapshot(
        self,
        *,
        previous_version: int,
        new_version: int,
        last_snapshot_version: int | None = None,
    ) -> bool:
        if new_version <= previous_version:
            return False
        if last_snapshot_version is not None and new_version - last_snapshot_version >= self.n:
            return True  # a missed (e.g. failed) snapshot is caught up on the next save
        return new_version // self.n > previous_version // self.n

    def __repr__(self) -> str:
        return f"EveryNEvents({self.n})"


class NeverSnapshot:
    """The strategy of a repository without snapshots."""

    def should_snapshot(
        self,
        *,
        previous_version: int,
        new_version: int,
        last_snapshot_version: int | None = None,
    ) -> bool:
        return False
