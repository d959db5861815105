"""Ports of the projection machinery: read-model store, checkpoint store, progress, errors.

Persistence-free: the SQLAlchemy adapters live in
``cqrs_ddd_persistence_sqlalchemy.projections``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_core.ports.event_store import StoredEvent

from .schema import ProjectionSchema

__all__ = [
    "Checkpoint",
    "DocumentWrite",
    "ErrorPolicy",
    "IProjectionPositionStore",
    "IProjectionStore",
    "ProgressCallback",
    "ProjectionHandlerError",
    "ProjectionProgress",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """Where a projection stands in the global event log.

    ``cursor`` is the event store's opaque ``read_all`` cursor; ``position`` the global position
    of the last applied event (informational: on PostgreSQL commit order is not position order);
    ``events_processed`` counts events applied since the last reset and only ever grows, which
    makes it the compare-and-set token of a checkpoint write.
    """

    projection: str
    cursor: str | None = None
    position: int | None = None
    events_processed: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentWrite:
    """One document of a batch upsert (see :meth:`IProjectionStore.upsert_many`)."""

    doc_id: Any
    doc: Mapping[str, Any]
    version: int | None = None
    event_id: str | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionProgress:
    """Reported after every committed batch of a run or rebuild."""

    projection: str
    events_processed: int
    batch_size: int
    position: int | None
    elapsed: float
    caught_up: bool
    #: Total events to replay, when the event store can tell (else ``None``).
    total: int | None = None


#: ``callback(progress)``, sync or async.
ProgressCallback = Callable[[ProjectionProgress], Awaitable[None] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorPolicy:
    """What a runner does when a handler raises.

    The failing event is retried alone, in a fresh transaction, up to ``max_attempts`` times in
    all, waiting ``backoff * 2**(attempt-1)`` seconds (at most ``max_backoff``) between
    attempts; then the runner stops with :class:`ProjectionHandlerError` naming the event.
    Events before it in the batch are committed first, so no work is lost.
    """

    max_attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2 ** max(0, attempt - 1))))


class ProjectionHandlerError(CQRSDDDError):
    """A projection handler kept failing on one event; the runner stopped before it.

    The checkpoint stays just before the failing event, so a restarted runner (after a fix)
    resumes exactly there.
    """

    def __init__(self, projection: str, event: StoredEvent, attempts: int) -> None:
        super().__init__(
            f"projection {projection!r} stopped: handler failed {attempts} time(s) on event "
            f"{event.event_id} ({event.event_type}, stream {event.aggregate_id!r} "
            f"v{event.version}, position {event.position})"
        )
        self.projection = projection
        self.event = event
        self.event_id = event.event_id
        self.event_type = event.event_type
        self.position = event.position
        self.attempts = attempts


class IProjectionStore(Protocol):
    """Read-model collections of documents keyed by id, with version-guarded upserts."""

    async def ensure_collection(
        self, name: str, *, schema: ProjectionSchema | None = None, uow: Any = None
    ) -> None: ...

    async def upsert(
        self,
        collection: str,
        doc_id: Any,
        doc: Mapping[str, Any] | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        version: int | None = None,
        event_id: str | None = None,
        position: int | None = None,
        uow: Any = None,
    ) -> bool:
        """Insert or replace one document; ``False`` when the guard refused a stale write."""
        ...

    async def upsert_many(
        self, collection: str, docs: Sequence[DocumentWrite], *, uow: Any = None
    ) -> int: ...

    async def get(
        self, collection: str, doc_id: Any, *, uow: Any = None
    ) -> dict[str, Any] | None: ...

    async def delete(self, collection: str, doc_id: Any, *, uow: Any = None) -> bool: ...

    async def truncate(self, collection: str, *, uow: Any = None) -> None: ...


class IProjectionPositionStore(Protocol):
    """Projection checkpoints, written in the caller's transaction."""

    async def get(self, projection: str, *, uow: Any = None) -> Checkpoint | None: ...

    async def advance(
        self,
        projection: str,
        *,
        cursor: str | None,
        position: int | None,
        count: int,
        expected: int,
        uow: Any = None,
    ) -> Checkpoint:
        """Move the checkpoint forward by ``count`` events if it still is at ``expected``."""
        ...

    async def reset(self, projection: str, *, uow: Any = None) -> None: ...
