"""The snapshot record and the snapshot store port."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["ISnapshotStore", "Snapshot"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The state of one aggregate at one stream version.

    ``schema_version`` is the version of the *state's* shape: a loader ignores snapshots whose
    schema version is not the current one and replays from the events instead.
    """

    aggregate_type: str
    aggregate_id: str
    version: int
    state: dict[str, Any]
    schema_version: int = 1
    created_at: datetime = field(default_factory=_now)


class ISnapshotStore(Protocol):
    """Latest snapshots per ``(aggregate_type, aggregate_id)``."""

    async def save(self, snapshot: Snapshot, *, uow: Any = None) -> None: ...

    async def get_latest(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        schema_version: int | None = None,
        uow: Any = None,
    ) -> Snapshot | None: ...

    async def delete(self, aggregate_type: str, aggregate_id: str, *, uow: Any = None) -> int: ...
