"""``SQLAlchemySnapshotStore``: latest aggregate snapshots, upserted, with retention.

One row per ``(aggregate_type, aggregate_id, version)``; saving the same version again updates
it (upsert), and after each save only the newest ``keep`` snapshots of the stream remain
(``keep=1``, the default, leaves exactly one row per aggregate).

Statements are built once (kept) and run through the execution seam: in the joined unit of
work, else a read or a delete on its own (one autocommit round trip on PostgreSQL) and a save
with its pruning in a short transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, String, bindparam, delete, select

from cqrs_ddd_advanced_core.snapshots import Snapshot
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.tables.snapshots import snapshots_table
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

__all__ = ["SQLAlchemySnapshotStore", "snapshots_table"]

_t = snapshots_table.c


def _same_stream() -> Any:
    return (_t.aggregate_type == bindparam("s_type", type_=String)) & (
        _t.aggregate_id == bindparam("s_id", type_=String)
    )


def _latest(by_schema: bool, at_most: bool) -> Any:
    stmt = select(snapshots_table).where(_same_stream())
    if by_schema:
        stmt = stmt.where(_t.schema_version == bindparam("s_schema_version", type_=Integer))
    if at_most:
        stmt = stmt.where(_t.version <= bindparam("s_max_version", type_=BigInteger))
    return kept(stmt.order_by(_t.version.desc()).limit(1))


# (schema_version given, max_version given) -> the read of the newest snapshot
_LATEST = {(s, m): _latest(s, m) for s in (False, True) for m in (False, True)}
_DELETE = kept(delete(snapshots_table).where(_same_stream()))
# Only the newest ``keep`` versions of the stream stay.
_PRUNE = kept(
    delete(snapshots_table).where(
        _same_stream(),
        _t.version.not_in(
            select(_t.version)
            .where(_same_stream())
            .order_by(_t.version.desc())
            .limit(bindparam("s_keep", type_=Integer))
            .scalar_subquery()
        ),
    )
)
_UPSERTS: dict[DialectSupport, Any] = {}


def _upsert(dialect: DialectSupport) -> Any:
    """``INSERT … ON CONFLICT (type, id, version) DO UPDATE`` of the dialect, built once."""
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        ins = dialect.insert(snapshots_table)
        stmt = _UPSERTS[dialect] = kept(
            ins.on_conflict_do_update(
                index_elements=[_t.aggregate_type, _t.aggregate_id, _t.version],
                set_={
                    "schema_version": ins.excluded.schema_version,
                    "state": ins.excluded.state,
                    "created_at": ins.excluded.created_at,
                },
            )
        )
    return stmt


class SQLAlchemySnapshotStore:
    """Snapshot store; built with any bind — an engine, session factory, session, unit of work
    or unit-of-work factory (``SQLAlchemySnapshotStore(uow_factory)`` as in the seed)::

        store = SQLAlchemySnapshotStore(session_factory, keep=2)
        await store.save(Snapshot(aggregate_type="Order", aggregate_id="o-1", version=50,
                                  state=order.model_dump(mode="json")))
        latest = await store.get_latest("Order", "o-1", schema_version=1)

    Args:
        bind: where operations run (see :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`).
        keep: snapshots kept per aggregate after a save (``None`` keeps all).
    """

    def __init__(self, bind: Bind = None, *, keep: int | None = 1) -> None:
        if keep is not None and keep < 1:
            raise ConfigurationError("keep must be >= 1 (or None to keep every snapshot)")
        self.binding = Binding(bind, owner="SQLAlchemySnapshotStore")
        self.keep = keep

    async def save(self, snapshot: Snapshot, *, uow: SQLAlchemyUnitOfWork | None = None) -> None:
        """Upsert ``snapshot`` and prune the stream's older ones beyond ``keep``."""
        values = {
            "aggregate_type": snapshot.aggregate_type,
            "aggregate_id": snapshot.aggregate_id,
            "version": snapshot.version,
            "schema_version": snapshot.schema_version,
            "state": snapshot.state,
            "created_at": snapshot.created_at,
        }
        if self.keep is None:
            async with self.binding.single(uow) as runner:
                await runner.execute(_upsert(dialect_for(runner.dialect)), values)
            return
        async with self.binding.transaction(uow) as executor:
            await executor.execute(_upsert(dialect_for(executor.dialect)), values)
            await executor.execute(
                _PRUNE,
                {
                    "s_type": snapshot.aggregate_type,
                    "s_id": snapshot.aggregate_id,
                    "s_keep": self.keep,
                },
            )

    async def get_latest(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        schema_version: int | None = None,
        max_version: int | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Snapshot | None:
        """The newest snapshot (of ``schema_version`` when given; ``<= max_version``)."""
        stmt = _LATEST[(schema_version is not None, max_version is not None)]
        params: dict[str, Any] = {"s_type": aggregate_type, "s_id": aggregate_id}
        if schema_version is not None:
            params["s_schema_version"] = schema_version
        if max_version is not None:
            params["s_max_version"] = max_version
        async with self.binding.single(uow) as runner:
            rows = await runner.fetch_mappings(stmt, params)
        if not rows:
            return None
        row = rows[0]
        return Snapshot(
            aggregate_type=row["aggregate_type"],
            aggregate_id=row["aggregate_id"],
            version=int(row["version"]),
            schema_version=int(row["schema_version"]),
            state=row["state"],
            created_at=row["created_at"],
        )

    async def delete(
        self, aggregate_type: str, aggregate_id: str, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int:
        """Remove every snapshot of one aggregate; returns how many rows went."""
        async with self.binding.single(uow) as runner:
            count = await runner.execute(_DELETE, {"s_type": aggregate_type, "s_id": aggregate_id})
        return max(count, 0)
