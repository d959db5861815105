"""What the operations page shows, read from the database in one go: a frozen :class:`Snapshot`.

Every number comes from the library's own administrative queries (the outbox's and the jobs'
``stats`` / ``dead_letters`` / ``count_by_*``, ``stalled``, the health command's projection lags,
the event store's horizon and the dialect's horizon holder), so the page says what
``cqrs-ddd-sqla health`` and the ``stats`` commands say. A component whose tables are missing is
``None`` (the application does not use it, or has not migrated yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobStatus
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import describe_url, missing_tables
from cqrs_ddd_persistence_sqlalchemy.cli.projections import Lag, _head, projection_lags
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.dialects.eventlog import HorizonHolder, HorizonStatus
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.queue import QueueStats

__all__ = [
    "EventStoreView",
    "JobsView",
    "OutboxView",
    "ProjectionsView",
    "Snapshot",
    "take_snapshot",
]


@dataclass(frozen=True, slots=True)
class OutboxView:
    stats: QueueStats
    #: The oldest dead letters (at most the page's limit), with their last error.
    dead_letters: tuple[OutboxMessage, ...]


@dataclass(frozen=True, slots=True)
class JobsView:
    by_status: Mapping[JobStatus, int]
    by_type: Mapping[str, Mapping[JobStatus, int]]
    #: Jobs whose lease expired without a heartbeat (their worker died), and the oldest's age.
    stalled: int
    stalled_age_s: float | None


@dataclass(frozen=True, slots=True)
class ProjectionsView:
    head: int
    lags: tuple[Lag, ...]


@dataclass(frozen=True, slots=True)
class EventStoreView:
    head: int
    events: int
    horizon: HorizonStatus
    holder: HorizonHolder | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of every component at ``taken_at``."""

    taken_at: datetime
    where: str
    outbox: OutboxView | None = None
    jobs: JobsView | None = None
    projections: ProjectionsView | None = None
    sagas: Mapping[str, Mapping[str, int]] | None = None
    event_store: EventStoreView | None = None
    missing: tuple[str, ...] = field(default=())


async def take_snapshot(engine: AsyncEngine, *, dead_letters: int = 20) -> Snapshot:
    """Read every component's state (the ones whose tables exist)."""
    from cqrs_ddd_persistence_sqlalchemy import metadata
    from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table
    from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table
    from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table
    from cqrs_ddd_persistence_sqlalchemy.tables.projections import projection_positions_table
    from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table

    missing = frozenset(await missing_tables(engine, sorted(metadata.tables)))

    def present(*tables: str) -> bool:
        return not missing.intersection(tables)

    # The log's head once for both panels that show it (a count over the whole log).
    head = await _head(engine) if present(events_table.name) else (0, 0)
    return Snapshot(
        taken_at=datetime.now(UTC),
        where=describe_url(engine),
        outbox=await _outbox(engine, dead_letters) if present(outbox_table.name) else None,
        jobs=await _jobs(engine) if present(jobs_table.name) else None,
        projections=(
            ProjectionsView(head[0], tuple(await projection_lags(engine)))
            if present(events_table.name, projection_positions_table.name)
            else None
        ),
        sagas=await _sagas(engine) if present(sagas_table.name) else None,
        event_store=await _event_store(engine, head) if present(events_table.name) else None,
        missing=tuple(sorted(missing)),
    )


async def _outbox(engine: AsyncEngine, limit: int) -> OutboxView:
    from cqrs_ddd_persistence_sqlalchemy.outbox import SQLAlchemyOutboxStorage

    storage = SQLAlchemyOutboxStorage(engine)
    stats = await storage.stats()
    dead = await storage.dead_letters(limit) if stats.dead else []
    return OutboxView(stats, tuple(dead))


async def _jobs(engine: AsyncEngine) -> JobsView:
    from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

    jobs = SQLAlchemyBackgroundJobRepository(BackgroundJob, engine)
    stalled, age = await jobs.stalled()
    return JobsView(await jobs.count_by_status(), await jobs.count_by_type(), stalled, age)


async def _sagas(engine: AsyncEngine) -> Mapping[str, Mapping[str, int]]:
    from cqrs_ddd_persistence_sqlalchemy.sagas import count_sagas_by_type

    return await count_sagas_by_type(engine)


async def _event_store(engine: AsyncEngine, head: tuple[int, int]) -> EventStoreView:
    from cqrs_ddd_persistence_sqlalchemy.eventstore import SQLAlchemyEventStore

    horizon = await SQLAlchemyEventStore(engine).horizon_lag()
    holder = await dialect_for(engine).horizon_holder(execution_for(engine))
    return EventStoreView(head[0], head[1], horizon, holder)
