"""When to take a snapshot of an event-sourced aggregate (persistence-free)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["EveryNEvents", "NeverSnapshot", "SnapshotStrategy"]


@runtime_checkable
class SnapshotStrategy(Protocol):
    """Decides after a save whether the aggregate's new state deserves a snapshot.

    ``previous_version`` is the stream version the save started from, ``new_version`` the one
    it reached; ``last_snapshot_version`` is the version of the aggregate's newest snapshot
    (``0``: it has none), or ``None`` when the caller does not know it.
    """

    def should_snapshot(
        self,
        *,
        previous_version: int,
        new_version: int,
        last_snapshot_version: int | None = None,
    ) -> bool: ...


class EveryNEvents:
    """Snapshot whenever the stream grew by ``n`` or more events since the last snapshot.

    The distance is counted from the last snapshot, not from the previous save and not by
    ``version % n == 0``: a save that adds several events at once, a load that starts from a
    snapshot, or a snapshot that failed (caught up on the next save) all count right::

        strategy = EveryNEvents(10)
        strategy.should_snapshot(previous_version=8, new_version=12, last_snapshot_version=0)
        # True: 12 events since "no snapshot"
        strategy.should_snapshot(previous_version=12, new_version=20, last_snapshot_version=12)
        # False: 8 events since the snapshot at 12 (crossing 20 does not matter)
        strategy.should_snapshot(previous_version=20, new_version=22, last_snapshot_version=12)
        # True

    When the caller does not know the last snapshot (``last_snapshot_version=None``), the
    strategy falls back to snapshotting when a save crosses a multiple of ``n``
    (``8 -> 12`` crosses 10).

    Raises:
        ConfigurationError: ``n`` is smaller than 1.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ConfigurationError(f"EveryNEvents needs n >= 1, got {n}")
        self.n = n

    def should_snapshot(
        self,
        *,
        previous_version: int,
        new_version: int,
        last_snapshot_version: int | None = None,
    ) -> bool:
        if new_version <= previous_version:
            return False  # nothing was appended
        if last_snapshot_version is None:
            return new_version // self.n > previous_version // self.n
        return new_version - last_snapshot_version >= self.n

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
