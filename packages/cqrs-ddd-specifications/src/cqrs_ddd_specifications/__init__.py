"""Specification pattern: JSON AST, operators, builder, query options and an in-memory evaluator.

Example:
    >>> from cqrs_ddd_specifications import SpecificationBuilder
    >>> builder = SpecificationBuilder()
    >>> spec = builder.where("status", "eq", "active").and_where("total", "gt", 100).build()
    >>> spec.is_satisfied_by({"status": "active", "total": 150})
    True
"""

from __future__ import annotations

from .builder import SpecificationBuilder as SpecificationBuilder
from .codec import dumps as dumps
from .codec import loads as loads
from .evaluator import evaluate as evaluate
from .evaluator import resolve_path as resolve_path
from .operators import ALIASES as ALIASES
from .operators import Operator as Operator
from .operators import resolve_operator as resolve_operator
from .options import OrderField as OrderField
from .options import QueryOptions as QueryOptions
from .options import decode_cursor as decode_cursor
from .options import encode_cursor as encode_cursor
from .paging import apply_options as apply_options
from .specification import AndSpecification as AndSpecification
from .specification import Condition as Condition
from .specification import Limits as Limits
from .specification import NotSpecification as NotSpecification
from .specification import OrSpecification as OrSpecification
from .specification import Specification as Specification

__all__ = [
    "ALIASES",
    "AndSpecification",
    "Condition",
    "Limits",
    "NotSpecification",
    "Operator",
    "OrSpecification",
    "OrderField",
    "QueryOptions",
    "Specification",
    "SpecificationBuilder",
    "apply_options",
    "decode_cursor",
    "dumps",
    "encode_cursor",
    "evaluate",
    "loads",
    "resolve_operator",
    "resolve_path",
]
