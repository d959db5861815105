"""Compile specifications to SQLAlchemy: ``build_sqla_filter`` and ``apply_query_options``.

Example:
    >>> from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
    >>> from cqrs_ddd_specifications import SpecificationBuilder
    >>> spec = SpecificationBuilder().where("status", "eq", "active").build()
    >>> stmt = select(OrderModel).where(build_sqla_filter(OrderModel, spec.to_dict()))
"""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import CompileContext as CompileContext
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import Target as Target

from .compiler import build_sqla_filter as build_sqla_filter
from .deferred import DialectPredicate as DialectPredicate
from .fields import Hooks as Hooks
from .fields import ResolutionHook as ResolutionHook
from .fields import known_fields as known_fields
from .fields import resolve_field as resolve_field
from .options import apply_query_options as apply_query_options
from .options import encode_cursor as encode_cursor
from .options import keyset as keyset
from .registry import JsonAccess as JsonAccess
from .registry import OperatorFunction as OperatorFunction
from .registry import SQLAlchemyOperatorRegistry as SQLAlchemyOperatorRegistry

__all__ = [
    "CompileContext",
    "DialectPredicate",
    "Hooks",
    "JsonAccess",
    "OperatorFunction",
    "ResolutionHook",
    "SQLAlchemyOperatorRegistry",
    "Target",
    "apply_query_options",
    "build_sqla_filter",
    "encode_cursor",
    "keyset",
    "known_fields",
    "resolve_field",
]
