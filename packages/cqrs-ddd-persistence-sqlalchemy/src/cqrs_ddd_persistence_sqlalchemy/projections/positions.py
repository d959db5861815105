"""``SQLAlchemyProjectionPositionStore``: projection checkpoints that only move forward.

Checkpoints are written in the caller's transaction (``uow=`` or the ambient unit of work), so a
projection runner commits its read-model writes and its new checkpoint together. Two ways to
write one:

- :meth:`advance` (what the runner uses): compare-and-set on ``events_processed``; a runner that
  lost the race gets :class:`ConcurrencyError` and its whole batch rolls back;
- :meth:`save_position`: a monotonic integer position for hand-written consumers; an older
  position is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cqrs_ddd_advanced_core.projections import Checkpoint
from cqrs_ddd_core.errors import ConcurrencyError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.tables.projections import projection_positions_table
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork

from .running import one_bind

__all__ = ["SQLAlchemyProjectionPositionStore"]

_t = projection_positions_table
_c = _t.c

_GET = kept(sa.select(_t).where(_c.projection == sa.bindparam("p_projection")))
_GET_ALL = kept(sa.select(_t).order_by(_c.projection))
_RESET = kept(sa.delete(_t).where(_c.projection == sa.bindparam("p_projection")))
# The compare-and-set: moves only a checkpoint still at ``expected`` (the row lock it takes
# makes a competing runner wait, then miss).
_ADVANCE = kept(
    sa.update(_t)
    .where(
        _c.projection == sa.bindparam("p_projection"),
        _c.events_processed == sa.bindparam("p_expected", type_=sa.BigInteger),
    )
    .values(
        cursor=sa.bindparam("p_cursor", type_=sa.Text),
        position=sa.bindparam("p_position", type_=sa.BigInteger),
        events_processed=_c.events_processed + sa.bindparam("p_count", type_=sa.BigInteger),
        updated_at=sa.bindparam("p_updated_at", type_=_c.updated_at.type),
    )
    .returning(*_c)
)

# dialect -> (the first checkpoint of a projection, the monotonic position upsert)
_UPSERTS: dict[DialectSupport, tuple[Any, Any]] = {}


def _upserts(dialect: DialectSupport) -> tuple[Any, Any]:
    """The dialect's ``INSERT … ON CONFLICT`` statements of checkpoints, built once."""
    built = _UPSERTS.get(dialect)
    if built is None:
        first = dialect.insert_ignore(_t, [_c.projection]).returning(*_c)
        ins = dialect.insert(_t)
        position = ins.on_conflict_do_update(
            index_elements=[_c.projection],
            set_={
                "cursor": ins.excluded.cursor,
                "position": ins.excluded.position,
                "events_processed": _c.events_processed + 1,
                "updated_at": ins.excluded.updated_at,
            },
            where=sa.or_(_c.position.is_(None), _c.position < ins.excluded.position),
        ).returning(_c.projection)
        built = _UPSERTS[dialect] = (kept(first), kept(position))
    return built


def _checkpoint(row: Mapping[str, Any]) -> Checkpoint:
    return Checkpoint(
        projection=row["projection"],
        cursor=row["cursor"],
        position=row["position"],
        events_processed=row["events_processed"],
        updated_at=row["updated_at"],
    )


class SQLAlchemyProjectionPositionStore:
    """Where each projection stands in the global event log.

    Args:
        bind: an engine, session factory, session, unit of work or unit-of-work factory
            (see :mod:`~cqrs_ddd_persistence_sqlalchemy.binding`); ``session_factory=`` is the
            same by its earlier name.

    Example:
        >>> positions = SQLAlchemyProjectionPositionStore(session_factory)
        >>> async with SQLAlchemyUnitOfWork(session_factory) as uow:
        ...     await read_model.upsert("orders", "o-1", doc, uow=uow)
        ...     await positions.save_position("orders", 42, uow=uow)
        ...     await uow.commit()
        >>> await positions.get_position("orders")
        42
    """

    def __init__(self, bind: Bind | Binding = None, *, session_factory: Bind = None) -> None:
        owner = "SQLAlchemyProjectionPositionStore"
        self.binding = Binding(one_bind(bind, session_factory, owner), owner=owner)

    async def get(
        self, projection: str, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> Checkpoint | None:
        """The checkpoint of ``projection`` (``None`` before its first event)."""
        async with self.binding.single(uow) as runner:
            rows = await runner.fetch_mappings(_GET, {"p_projection": projection})
        return _checkpoint(rows[0]) if rows else None

    async def get_all(self, *, uow: SQLAlchemyUnitOfWork | None = None) -> list[Checkpoint]:
        """Every checkpoint, by projection name."""
        async with self.binding.single(uow) as runner:
            rows = await runner.fetch_mappings(_GET_ALL)
        return [_checkpoint(r) for r in rows]

    async def get_position(
        self, projection: str, *, uow: SQLAlchemyUnitOfWork | None = None
    ) -> int | None:
        """The global position of the last event applied by ``projection``."""
        checkpoint = await self.get(projection, uow=uow)
        return None if checkpoint is None else checkpoint.position

    async def save_position(
        self,
        projection: str,
        position: int,
        *,
        cursor: str | None = None,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> bool:
        """Move ``projection`` to ``position`` unless it already is at or past it.

        ``cursor`` defaults to the position as text (a position-only cursor, right for SQLite
        and for event logs ordered by position). Returns whether the checkpoint moved.
        """
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise InvalidValueError(f"position must be a non-negative int, got {position!r}")
        params = {
            "projection": projection,
            "cursor": cursor if cursor is not None else str(position),
            "position": position,
            "events_processed": 1,
            "updated_at": datetime.now(UTC),
        }
        async with self.binding.single(uow) as runner:
            _, upsert = _upserts(dialect_for(runner.dialect))
            return bool(await runner.fetch(upsert, params))

    async def advance(
        self,
        projection: str,
        *,
        cursor: str | None,
        position: int | None,
        count: int,
        expected: int,
        uow: SQLAlchemyUnitOfWork | None = None,
    ) -> Checkpoint:
        """Record ``count`` more applied events, if the checkpoint still is at ``expected``.

        Raises:
            ConcurrencyError: another runner moved the checkpoint (roll the batch back).
        """
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise InvalidValueError(f"count must be a positive int, got {count!r}")
        now = datetime.now(UTC)
        async with self.binding.transaction(uow) as executor:
            rows = await executor.fetch_mappings(
                _ADVANCE,
                {
                    "p_projection": projection,
                    "p_expected": expected,
                    "p_cursor": cursor,
                    "p_position": position,
                    "p_count": count,
                    "p_updated_at": now,
                },
            )
            if not rows and expected == 0:
                first, _ = _upserts(dialect_for(executor.dialect))
                rows = await executor.fetch_mappings(
                    first,
                    {
                        "projection": projection,
                        "cursor": cursor,
                        "position": position,
                        "events_processed": count,
                        "updated_at": now,
                    },
                )
            if not rows:
                raise ConcurrencyError(
                    f"checkpoint of projection {projection!r} moved: another runner applied "
                    f"events after {expected} (batch rolled back)"
                )
            return _checkpoint(rows[0])

    async def reset(self, projection: str, *, uow: SQLAlchemyUnitOfWork | None = None) -> None:
        """Forget the checkpoint: the projection starts again from the first event."""
        async with self.binding.single(uow) as runner:
            await runner.execute(_RESET, {"p_projection": projection})
