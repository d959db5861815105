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

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from cqrs_ddd_advanced_core.projections import Checkpoint
from cqrs_ddd_core.errors import ConcurrencyError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.binding import Bind, Binding

from .store import _dialect
from .tables import projection_positions_table

__all__ = ["SQLAlchemyProjectionPositionStore"]

_t = projection_positions_table


def _checkpoint(row: RowMapping) -> Checkpoint:
    return Checkpoint(
        projection=row["projection"],
        cursor=row["cursor"],
        position=row["position"],
        events_processed=row["events_processed"],
        updated_at=row["updated_at"],
    )


class SQLAlchemyProjectionPositionStore:
    """Where each projection stands in the global event log.

    Example:
        >>> positions = SQLAlchemyProjectionPositionStore(session_factory)
        >>> async with SQLAlchemyUnitOfWork(session_factory) as uow:
        ...     await read_model.upsert("orders", "o-1", doc, uow=uow)
        ...     await positions.save_position("orders", 42, uow=uow)
        ...     await uow.commit()
        >>> await positions.get_position("orders")
        42
    """

    def __init__(self, session_factory: Bind = None) -> None:
        self._source = Binding(session_factory)

    async def get(self, projection: str, *, uow: Any = None) -> Checkpoint | None:
        """The checkpoint of ``projection`` (``None`` before its first event)."""
        async with self._source.session(uow) as session:
            row = (
                (await session.execute(sa.select(_t).where(_t.c.projection == projection)))
                .mappings()
                .first()
            )
            return None if row is None else _checkpoint(row)

    async def get_all(self, *, uow: Any = None) -> list[Checkpoint]:
        """Every checkpoint, by projection name."""
        async with self._source.session(uow) as session:
            result = await session.execute(sa.select(_t).order_by(_t.c.projection))
            return [_checkpoint(r) for r in result.mappings()]

    async def get_position(self, projection: str, *, uow: Any = None) -> int | None:
        """The global position of the last event applied by ``projection``."""
        checkpoint = await self.get(projection, uow=uow)
        return None if checkpoint is None else checkpoint.position

    async def save_position(
        self,
        projection: str,
        position: int,
        *,
        cursor: str | None = None,
        uow: Any = None,
    ) -> bool:
        """Move ``projection`` to ``position`` unless it already is at or past it.

        ``cursor`` defaults to the position as text (a position-only cursor, right for SQLite
        and for event logs ordered by position). Returns whether the checkpoint moved.
        """
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise InvalidValueError(f"position must be a non-negative int, got {position!r}")
        now = datetime.now(UTC)
        async with self._source.session(uow) as session:
            ins = _dialect(session).insert(_t)
            stmt = (
                ins.values(
                    projection=projection,
                    cursor=cursor if cursor is not None else str(position),
                    position=position,
                    events_processed=1,
                    updated_at=now,
                )
                .on_conflict_do_update(
                    index_elements=[_t.c.projection],
                    set_={
                        "cursor": ins.excluded.cursor,
                        "position": ins.excluded.position,
                        "events_processed": _t.c.events_processed + 1,
                        "updated_at": ins.excluded.updated_at,
                    },
                    where=sa.or_(_t.c.position.is_(None), _t.c.position < ins.excluded.position),
                )
                .returning(_t.c.projection)
            )
            return bool((await session.execute(stmt)).all())

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
        """Record ``count`` more applied events, if the checkpoint still is at ``expected``.

        Raises:
            ConcurrencyError: another runner moved the checkpoint (roll the batch back).
        """
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise InvalidValueError(f"count must be a positive int, got {count!r}")
        now = datetime.now(UTC)
        async with self._source.session(uow) as session:
            update = (
                sa.update(_t)
                .where(_t.c.projection == projection, _t.c.events_processed == expected)
                .values(
                    cursor=cursor,
                    position=position,
                    events_processed=_t.c.events_processed + count,
                    updated_at=now,
                )
                .returning(*_t.c)
            )
            row = (await session.execute(update)).mappings().first()
            if row is None and expected == 0:
                insert = (
                    _dialect(session)
                    .insert(_t)
                    .values(
                        projection=projection,
                        cursor=cursor,
                        position=position,
                        events_processed=count,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[_t.c.projection])
                    .returning(*_t.c)
                )
                row = (await session.execute(insert)).mappings().first()
            if row is None:
                raise ConcurrencyError(
                    f"checkpoint of projection {projection!r} moved: another runner applied "
                    f"events after {expected} (batch rolled back)"
                )
            return _checkpoint(row)

    async def reset(self, projection: str, *, uow: Any = None) -> None:
        """Forget the checkpoint: the projection starts again from the first event."""
        async with self._source.session(uow) as session:
            await session.execute(sa.delete(_t).where(_t.c.projection == projection))
