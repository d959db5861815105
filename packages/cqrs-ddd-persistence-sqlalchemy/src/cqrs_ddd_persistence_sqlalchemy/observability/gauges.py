"""``DatabaseGauges``: the gauges of database state, read every few seconds.

OpenTelemetry calls gauge callbacks synchronously, at export time; the database is read
asynchronously, so a service reads it on its own schedule (:meth:`DatabaseGauges.run`) and the
callbacks report the last reading. A library table that does not exist (a component the
application does not use) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, inspect, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import set_gauge
from cqrs_ddd_persistence_sqlalchemy.queue import PENDING_SQL
from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table
from cqrs_ddd_persistence_sqlalchemy.tables.projections import projection_positions_table
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table

__all__ = ["DatabaseGauges"]

logger = logging.getLogger(__name__)


class DatabaseGauges:
    """Reads the gauges of ``engine``'s library tables into the library's meters.

    Example::

        gauges = DatabaseGauges(engine)
        task = asyncio.create_task(gauges.run(interval=10))
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._tables: set[str] | None = None

    async def run(self, *, interval: float = 10.0) -> None:
        """Refresh every ``interval`` seconds until cancelled (a failed reading is logged
        and the previous one kept)."""
        while True:
            try:
                await self.refresh()
            except Exception:
                logger.warning("reading the database gauges failed", exc_info=True)
            await asyncio.sleep(interval)

    async def refresh(self) -> None:
        """Read every gauge once."""
        if self._tables is None:
            async with self.engine.connect() as conn:
                names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            self._tables = set(names)
        now = datetime.now(UTC)
        if events_table.name in self._tables:
            await self._event_store()
            if projection_positions_table.name in self._tables:
                await self._projections(now)
        if outbox_table.name in self._tables:
            await self._outbox()
        if jobs_table.name in self._tables:
            await self._jobs(now)
        if sagas_table.name in self._tables:
            await self._sagas()

    async def _fetch(self, statement: Any) -> Sequence[Sequence[Any]]:
        return await execution_for(self.engine).fetch(statement)

    async def _event_store(self) -> None:
        from cqrs_ddd_persistence_sqlalchemy.eventstore.store import SQLAlchemyEventStore

        status = await SQLAlchemyEventStore(self.engine).horizon_lag()
        set_gauge("cqrs.eventstore.horizon.lag", [(status.invisible_events, {})])
        set_gauge("cqrs.eventstore.horizon.age", [(status.oldest_xact_age_s or 0.0, {})])

    async def _projections(self, now: datetime) -> None:
        p, e = projection_positions_table.c, events_table.c
        behind = (
            select(func.count())
            .where(e.position > func.coalesce(p.position, literal(0)))
            .scalar_subquery()
        )
        rows = await self._fetch(select(p.projection, p.updated_at, behind))
        set_gauge("cqrs.projection.lag", [(int(r[2]), {"projection": r[0]}) for r in rows])
        set_gauge(
            "cqrs.projection.checkpoint.age",
            [((now - r[1]).total_seconds(), {"projection": r[0]}) for r in rows],
        )

    async def _outbox(self) -> None:
        from cqrs_ddd_persistence_sqlalchemy.outbox.storage import SQLAlchemyOutboxStorage

        stats = await SQLAlchemyOutboxStorage(self.engine).stats()
        set_gauge("cqrs.outbox.pending", [(stats.pending + stats.leased + stats.scheduled, {})])
        set_gauge("cqrs.outbox.oldest.age", [(stats.lag_seconds, {})])
        set_gauge("cqrs.outbox.dead", [(stats.dead, {})])

    async def _jobs(self, now: datetime) -> None:
        from cqrs_ddd_advanced_core.jobs import BackgroundJob
        from cqrs_ddd_persistence_sqlalchemy.jobs import SQLAlchemyBackgroundJobRepository

        t = jobs_table.c
        status = SQLAlchemyBackgroundJobRepository(BackgroundJob, self.engine).status_expression(
            now
        )
        by_status = await self._fetch(
            select(t.job_type, status, func.count()).group_by(t.job_type, status)
        )
        # A lease that expired without the job being settled: its worker died (a subset of
        # pending until another worker claims it again).
        expired = and_(t.status == PENDING_SQL, t.lease_token.is_not(None), t.locked_until <= now)
        stalled = await self._fetch(
            select(t.job_type, func.count()).where(expired).group_by(t.job_type)
        )
        readings = [(int(n), {"job_type": jt, "status": str(s).lower()}) for jt, s, n in by_status]
        readings += [(int(n), {"job_type": jt, "status": "stalled"}) for jt, n in stalled]
        set_gauge("cqrs.jobs", readings)

    async def _sagas(self) -> None:
        t = sagas_table.c
        rows = await self._fetch(select(t.saga_status, func.count()).group_by(t.saga_status))
        set_gauge("cqrs.sagas", [(int(n), {"status": str(s).lower()}) for s, n in rows])
