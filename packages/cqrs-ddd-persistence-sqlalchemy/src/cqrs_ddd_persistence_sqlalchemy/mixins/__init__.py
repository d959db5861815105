"""Reusable column mixins for application models.

- :class:`VersionMixin` — the optimistic-concurrency ``version`` column;
- :class:`AuditableModelMixin` — ``created_at``/``updated_at`` (database clock, aware UTC) and
  ``created_by``/``updated_by`` (:func:`acting_as` / :func:`set_actor_provider`);
- :class:`ArchivableModelMixin` — soft delete (``archived_at``/``archived_by``, partial indexes);
- :class:`SpatialModelMixin` — a geometry column (PostGIS / SpatiaLite; ``geometry`` extra).
"""

from cqrs_ddd_persistence_sqlalchemy.mixins.archivable import (
    ArchivableModelMixin as ArchivableModelMixin,
)
from cqrs_ddd_persistence_sqlalchemy.mixins.auditable import (
    AuditableModelMixin as AuditableModelMixin,
)
from cqrs_ddd_persistence_sqlalchemy.mixins.auditable import acting_as as acting_as
from cqrs_ddd_persistence_sqlalchemy.mixins.auditable import current_actor as current_actor
from cqrs_ddd_persistence_sqlalchemy.mixins.auditable import (
    set_actor_provider as set_actor_provider,
)
from cqrs_ddd_persistence_sqlalchemy.mixins.spatial import SHAPELY_CONVERTER as SHAPELY_CONVERTER
from cqrs_ddd_persistence_sqlalchemy.mixins.spatial import WKT_CONVERTER as WKT_CONVERTER
from cqrs_ddd_persistence_sqlalchemy.mixins.spatial import SpatialModelMixin as SpatialModelMixin
from cqrs_ddd_persistence_sqlalchemy.mixins.spatial import shapely_converter as shapely_converter
from cqrs_ddd_persistence_sqlalchemy.mixins.spatial import wkt_converter as wkt_converter
from cqrs_ddd_persistence_sqlalchemy.mixins.version import VersionMixin as VersionMixin

__all__ = [
    "SHAPELY_CONVERTER",
    "WKT_CONVERTER",
    "ArchivableModelMixin",
    "AuditableModelMixin",
    "SpatialModelMixin",
    "VersionMixin",
    "acting_as",
    "current_actor",
    "set_actor_provider",
    "shapely_converter",
    "wkt_converter",
]
