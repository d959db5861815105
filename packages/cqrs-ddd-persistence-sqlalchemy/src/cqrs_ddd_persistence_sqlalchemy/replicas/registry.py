"""Which engines have read replicas: the :class:`~.routing.ReplicaSet` attached to an engine.

Looked up by the stores' bind (:mod:`~cqrs_ddd_persistence_sqlalchemy.binding`) for query-side
reads and by the unit of work after a commit. Until a replica set is attached anywhere in the
process the look-up is one test of a module flag: engines without replicas pay nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.replicas.routing import ReplicaSet

__all__ = ["attach", "replicas_attached", "replicas_of"]

_SETS: WeakKeyDictionary[Engine, ReplicaSet] = WeakKeyDictionary()
_any = False


def attach(sync_engine: Engine, replicas: ReplicaSet) -> None:
    global _any
    _SETS[sync_engine] = replicas
    _any = True


def replicas_attached() -> bool:
    """Whether any engine of the process has replicas (the unit of work's cheap test)."""
    return _any


def replicas_of(engine: Any) -> ReplicaSet | None:
    """The replica set of ``engine`` (an ``AsyncEngine``), if one is attached."""
    if not _any or engine is None:
        return None
    return _SETS.get(engine.sync_engine)
