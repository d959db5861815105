"""The specification kernel: what the specification compiler and the dialects' operators share.

The compiler (``specifications/``) is a component; the dialects' operators
(``dialects/postgresql/specs/``, ``dialects/sqlite/specs/``) sit in the dialect seam below it
and must not import it. What both need lives here, in the seam: the resolved field
(:class:`Target`), the context operator functions receive (:class:`CompileContext`), their
signature (:data:`OperatorFn`), how a dialect reads JSON (:class:`JsonAccess`), field kinds
(:func:`field_kind`, :func:`is_text`) and geometry values (:mod:`.geometry`).
"""

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.context import (
    CompileContext as CompileContext,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.context import JsonAccess as JsonAccess
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.context import OperatorFn as OperatorFn
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.context import (
    OperatorTable as OperatorTable,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.kinds import FieldKind as FieldKind
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.kinds import field_kind as field_kind
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.kinds import is_text as is_text
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import ScalarKind as ScalarKind
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import Target as Target
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import (
    is_json_type as is_json_type,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import (
    require_json as require_json,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import (
    scalar_kind as scalar_kind,
)

__all__ = [
    "CompileContext",
    "FieldKind",
    "JsonAccess",
    "OperatorFn",
    "OperatorTable",
    "ScalarKind",
    "Target",
    "field_kind",
    "is_json_type",
    "is_text",
    "require_json",
    "scalar_kind",
]
