"""``SQLAlchemySnapshotStore``: latest aggregate snapshots, upserted, with retention.

One row per ``(aggregate_type, aggregate_id, version)``; saving the same version again updates
it (upsert), and after each save only the newest ``keep`` snapshots of the stream remain
(``keep=1``, the default, leaves exactly one row per aggregate).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cqrs_ddd_advanced_core.snapshots import Snapshot
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.tables.snapshots import snapshots_table

__all__ = ["SQLAlchemySnapshotStore", "snapshots_table"]


def _upsert(session: AsyncSession) -> Any:
    # Generic code picks the dialect module; both spell the upsert ``on_conflict_do_update``.
    return dialect_for(session).insert(snapshots_table)


class SQLAlchemySnapshotStore:
    """Snapshot store; built with a session factory, engine, session, unit of work or
    unit-of-work factory (``SQLAlchemySnapshotStore(uow_factory)`` as in the seed)::

        store = SQLAlchemySnapshotStore(session_factory, keep=2)
        await store.save(Snapshot(aggregate_type="Order", aggregate_id="o-1", version=50,
                                  state=order.model_dump(mode="json")))
        latest = await store.get_latest("Order", "o-1", schema_version=1)

    Args:
        bind: where sessions come from (see ``SessionSource``).
        keep: snapshots kept per aggregate after a save (``None`` keeps all).
    """

    def __init__(self, bind: Any = None, *, keep: int | None = 1) -> None:
        if keep is not None and keep < 1:
            raise ConfigurationError("keep must be >= 1 (or None to keep every snapshot)")
        self._source = Binding(bind, owner="SQLAlchemySnapshotStore")
        self.keep = keep

    async def save(self, snapshot: Snapshot, *, uow: Any = None) -> None:
        """Upsert ``snapshot`` and prune the stream's older ones beyond ``keep``."""
        t = snapshots_table.c
        values = {
            "aggregate_type": snapshot.aggregate_type,
            "aggregate_id": snapshot.aggregate_id,
            "version": snapshot.version,
            "schema_version": snapshot.schema_version,
            "state": snapshot.state,
            "created_at": snapshot.created_at,
        }
        async with self._source.session(uow) as session:
            conn = await session.connection()
            stmt = _upsert(session).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.aggregate_type, t.aggregate_id, t.version],
                set_={
                    "schema_version": stmt.excluded.schema_version,
                    "state": stmt.excluded.state,
                    "created_at": stmt.excluded.created_at,
                },
            )
            await conn.execute(stmt)
            if self.keep is not None:
                same = (t.aggregate_type == snapshot.aggregate_type) & (
                    t.aggregate_id == snapshot.aggregate_id
                )
                kept = select(t.version).where(same).order_by(t.version.desc()).limit(self.keep)
                await conn.execute(
                    delete(snapshots_table).where(same, t.version.not_in(kept.scalar_subquery()))
                )

    async def get_latest(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        schema_version: int | None = None,
        max_version: int | None = None,
        uow: Any = None,
    ) -> Snapshot | None:
        """The newest snapshot (of ``schema_version`` when given; ``<= max_version``)."""
        t = snapshots_table.c
        stmt = (
            select(snapshots_table)
            .where(t.aggregate_type == aggregate_type, t.aggregate_id == aggregate_id)
            .order_by(t.version.desc())
            .limit(1)
        )
        if schema_version is not None:
            stmt = stmt.where(t.schema_version == schema_version)
        if max_version is not None:
            stmt = stmt.where(t.version <= max_version)
        async with self._source.session(uow) as session:
            conn = await session.connection()
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        return Snapshot(
            aggregate_type=row.aggregate_type,
            aggregate_id=row.aggregate_id,
            version=int(row.version),
            schema_version=int(row.schema_version),
            state=row.state,
            created_at=row.created_at,
        )

    async def delete(self, aggregate_type: str, aggregate_id: str, *, uow: Any = None) -> int:
        """Remove every snapshot of one aggregate; returns how many rows went."""
        t = snapshots_table.c
        async with self._source.session(uow) as session:
            conn = await session.connection()
            result = await conn.execute(
                delete(snapshots_table).where(
                    t.aggregate_type == aggregate_type, t.aggregate_id == aggregate_id
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)
