"""Read replicas: query-side reads on streaming standbys, with read-your-writes.

``create_engine(primary_url, replicas=[standby_url, ...])`` (or :func:`attach_replicas` on
engines the application made) routes the reads that stores make outside a unit of work to the
standbys; :func:`last_commit` / :func:`read_after` carry a commit's position from one request to
the next. See ``docs/replicas.md``.
"""

from cqrs_ddd_persistence_sqlalchemy.replicas.engine import RoutedEngine
from cqrs_ddd_persistence_sqlalchemy.replicas.position import last_commit, read_after
from cqrs_ddd_persistence_sqlalchemy.replicas.registry import replicas_of
from cqrs_ddd_persistence_sqlalchemy.replicas.routing import (
    Replica,
    ReplicaSet,
    attach_replicas,
)

__all__ = [
    "Replica",
    "ReplicaSet",
    "RoutedEngine",
    "attach_replicas",
    "last_commit",
    "read_after",
    "replicas_of",
]
