"""``ProjectionSchema``: the typed columns of a read-model collection, persistence-free.

A collection with a schema is stored as a table with one column per field (indexable, sortable,
filterable with specifications); a collection without one is a schemaless document collection.

Example:
    >>> schema = ProjectionSchema(
    ...     fields=[
    ...         ProjectionField("order_id", FieldType.STRING, primary_key=True),
    ...         ProjectionField("customer_name", FieldType.STRING, index=True),
    ...         ProjectionField("total_amount", FieldType.DECIMAL),
    ...     ]
    ... )
    >>> schema.id_field
    'order_id'
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cqrs_ddd_core.errors import ConfigurationError

__all__ = [
    "RESERVED_FIELDS",
    "FieldType",
    "ProjectionField",
    "ProjectionSchema",
    "validate_identifier",
]

#: Bookkeeping columns every collection has; documents may not use these names as fields.
RESERVED_FIELDS = frozenset({"_id", "_version", "_last_event_id", "_last_position", "_updated_at"})

# \A...\Z: "$" would also accept a trailing newline.
_IDENTIFIER = re.compile(r"\A[a-z_][a-z0-9_]{0,62}\Z")


def validate_identifier(name: str, *, what: str = "name") -> str:
    """Return ``name`` if it is a safe lower-case SQL identifier (``[a-z_][a-z0-9_]{0,62}``).

    Collection and field names come from user code and end up as table and column names, so
    only a conservative alphabet is accepted (no quoting, no case folding surprises, within
    PostgreSQL's 63-byte limit).

    Raises:
        ConfigurationError: the name is not a safe identifier.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ConfigurationError(
            f"invalid {what} {name!r}: use 1-63 characters from a-z, 0-9 and _, "
            "not starting with a digit"
        )
    return name


class FieldType(enum.Enum):
    """Column types a projection field can have."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    BIGINT = "bigint"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    UUID = "uuid"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class ProjectionField:
    """One typed column of a projection collection."""

    name: str
    type: FieldType = FieldType.STRING
    nullable: bool = True
    primary_key: bool = False
    index: bool = False
    unique: bool = False
    #: Length of ``STRING`` columns (``None``: unbounded ``VARCHAR``).
    length: int | None = None

    def __post_init__(self) -> None:
        validate_identifier(self.name, what="field name")
        if self.name in RESERVED_FIELDS:
            raise ConfigurationError(f"field name {self.name!r} is reserved")
        if not isinstance(self.type, FieldType):
            object.__setattr__(self, "type", FieldType(self.type))


@dataclass(frozen=True, slots=True, init=False)
class ProjectionSchema:
    """The fields of a typed collection; exactly one field is the primary key.

    When no field is marked ``primary_key``, a field named ``id`` is the key if present,
    otherwise an ``id`` string field is added.
    """

    fields: tuple[ProjectionField, ...] = field(default_factory=tuple)

    def __init__(self, fields: Iterable[ProjectionField]) -> None:
        items = tuple(fields)
        names = [f.name for f in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"duplicate projection fields: {', '.join(duplicates)}")
        keys = [f for f in items if f.primary_key]
        if len(keys) > 1:
            raise ConfigurationError("a projection schema has exactly one primary key field")
        if not keys:
            if "id" in names:
                items = tuple(
                    ProjectionField(
                        f.name, f.type, nullable=False, primary_key=True, length=f.length
                    )
                    if f.name == "id"
                    else f
                    for f in items
                )
            else:
                items = (ProjectionField("id", FieldType.STRING, primary_key=True), *items)
        object.__setattr__(self, "fields", items)

    @property
    def id_field(self) -> str:
        """The name of the primary key field."""
        return next(f.name for f in self.fields if f.primary_key)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def get(self, name: str) -> ProjectionField | None:
        return next((f for f in self.fields if f.name == name), None)
