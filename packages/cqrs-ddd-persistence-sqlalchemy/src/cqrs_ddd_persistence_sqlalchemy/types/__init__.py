"""Cross-dialect column types and helpers."""

from cqrs_ddd_persistence_sqlalchemy.types.clock import utcnow as utcnow
from cqrs_ddd_persistence_sqlalchemy.types.datetime import UTCDateTime as UTCDateTime
from cqrs_ddd_persistence_sqlalchemy.types.json import JSONType as JSONType
from cqrs_ddd_persistence_sqlalchemy.types.spatialite import (
    enable_spatialite as enable_spatialite,
)
from cqrs_ddd_persistence_sqlalchemy.types.spatialite import (
    init_spatial_metadata as init_spatial_metadata,
)
from cqrs_ddd_persistence_sqlalchemy.types.spatialite import (
    load_spatialite as load_spatialite,
)
from cqrs_ddd_persistence_sqlalchemy.types.uuid import UUIDType as UUIDType
from cqrs_ddd_persistence_sqlalchemy.types.xid8 import Xid8 as Xid8

#: Alias: an aware UTC datetime column.
UTCDateTimeType = UTCDateTime

__all__ = [
    "JSONType",
    "UTCDateTime",
    "UTCDateTimeType",
    "UUIDType",
    "Xid8",
    "enable_spatialite",
    "init_spatial_metadata",
    "load_spatialite",
    "utcnow",
]
