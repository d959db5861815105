"""Sagas of every type at a glance: how many per type and status (operations pages, metrics).

:meth:`SQLAlchemySagaRepository.count_by_status` counts the sagas of one type and needs its
class; an operator's view has no saga classes loaded, only the table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.tables.sagas import sagas_table

__all__ = ["count_sagas_by_type"]


async def count_sagas_by_type(bind: Any, *, uow: Any = None) -> dict[str, dict[str, int]]:
    """Saga type -> status (``SagaStatus`` values) -> number of sagas, types in name order.

    ``bind`` is anything the one bind rule takes (an engine, a session factory, a unit of
    work...). Statuses are the stored strings: a status this version does not know is still
    counted, not an error.

    Example::

        counts = await count_sagas_by_type(engine)
        failed = sum(by_status.get("FAILED", 0) for by_status in counts.values())
    """
    t = sagas_table
    stmt = (
        select(t.c.saga_type, t.c.saga_status, func.count())
        .group_by(t.c.saga_type, t.c.saga_status)
        .order_by(t.c.saga_type, t.c.saga_status)
    )
    rows = await Binding(bind, owner="count_sagas_by_type").fetch(stmt, uow=uow)
    counts: dict[str, dict[str, int]] = {}
    for saga_type, status, count in rows:
        counts.setdefault(saga_type, {})[status] = int(count)
    return counts
