"""What operator functions receive and return: the contract between the specification compiler
and the dialects' operators.

An operator function takes the :class:`CompileContext`, the resolved :class:`~.target.Target`
and the validated value, and returns the *positive* predicate (negation and NULL handling are
the compiler's job). Each dialect's ``DialectSupport`` exposes its own operators
(``spec_operators``) and its :class:`JsonAccess` (``json_access``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import ScalarKind, Target

if TYPE_CHECKING:
    from cqrs_ddd_persistence_sqlalchemy.dialects.interface import DialectSupport

__all__ = ["CompileContext", "JsonAccess", "OperatorFn", "OperatorTable"]


class JsonAccess(Protocol):
    """How a dialect reads inside JSON documents."""

    def scalar(
        self, column: ColumnElement[Any], keys: Sequence[str], kind: ScalarKind
    ) -> ColumnElement[Any]:
        """The value at ``keys`` if it is a JSON value of ``kind``, else NULL."""
        ...

    def is_null(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        """Missing, SQL NULL or JSON ``null`` at ``keys``."""
        ...

    def is_empty(self, column: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        """Null (as above), ``""``, ``[]`` or ``{}`` at ``keys``."""
        ...


class OperatorTable(Protocol):
    """What an operator function may ask of the registry it was found in."""

    #: The default full-text configuration (PostgreSQL ``regconfig``).
    fts_config: str

    def json_access(self, dialect: DialectSupport | None, target: Target) -> JsonAccess:
        """The JSON reader for ``dialect`` (``None``: no dialect, an error)."""
        ...


@dataclass(frozen=True)
class CompileContext:
    """Passed to operator functions: the dialect being compiled for and the registry.

    ``dialect`` is ``None`` when a portable operator is built without a dialect.
    """

    dialect: DialectSupport | None
    registry: OperatorTable

    def json(self, target: Target) -> JsonAccess:
        """The dialect's reader of JSON documents."""
        return self.registry.json_access(self.dialect, target)

    def scalar(self, target: Target, kind: ScalarKind) -> ColumnElement[Any]:
        """The target as a comparable scalar (JSON values of another kind become NULL)."""
        if not target.is_json:
            return target.expr
        return self.json(target).scalar(target.expr, target.json_path, kind)


#: ``function(ctx, target, value) -> positive predicate``: how one operator compiles.
OperatorFn = Callable[[CompileContext, Target, Any], ColumnElement[bool]]
