"""Persistence-free projection pieces: schemas, handlers keyed by event type, runner ports.

Example:
    >>> from cqrs_ddd_advanced_core.projections import Projection
    >>> summaries = Projection("order_summaries", collections=["order_summaries"])
    >>> @summaries.on("OrderCreated")
    ... async def created(event, ctx):
    ...     await ctx.upsert("order_summaries", event.aggregate_id, dict(event.payload))
"""

from __future__ import annotations

from .handlers import EventKey as EventKey
from .handlers import Handler as Handler
from .handlers import HandlerRegistry as HandlerRegistry
from .handlers import Projection as Projection
from .handlers import ProjectionContext as ProjectionContext
from .handlers import WriteBuffer as WriteBuffer
from .memory import InMemoryProjectionStore as InMemoryProjectionStore
from .ports import Checkpoint as Checkpoint
from .ports import DocumentWrite as DocumentWrite
from .ports import ErrorPolicy as ErrorPolicy
from .ports import IProjectionPositionStore as IProjectionPositionStore
from .ports import IProjectionStore as IProjectionStore
from .ports import ProgressCallback as ProgressCallback
from .ports import ProjectionHandlerError as ProjectionHandlerError
from .ports import ProjectionProgress as ProjectionProgress
from .schema import RESERVED_FIELDS as RESERVED_FIELDS
from .schema import FieldType as FieldType
from .schema import ProjectionField as ProjectionField
from .schema import ProjectionSchema as ProjectionSchema
from .schema import validate_identifier as validate_identifier

__all__ = [
    "RESERVED_FIELDS",
    "Checkpoint",
    "DocumentWrite",
    "ErrorPolicy",
    "EventKey",
    "FieldType",
    "Handler",
    "HandlerRegistry",
    "IProjectionPositionStore",
    "IProjectionStore",
    "InMemoryProjectionStore",
    "ProgressCallback",
    "Projection",
    "ProjectionContext",
    "ProjectionField",
    "ProjectionHandlerError",
    "ProjectionProgress",
    "ProjectionSchema",
    "WriteBuffer",
    "validate_identifier",
]
