"""Cross-dialect column types."""

from sqlalchemy import Uuid as UUIDType

from cqrs_ddd_persistence_sqlalchemy.types.datetime import UTCDateTime as UTCDateTime
from cqrs_ddd_persistence_sqlalchemy.types.json import JSONType as JSONType

__all__ = ["JSONType", "UTCDateTime", "UUIDType"]
