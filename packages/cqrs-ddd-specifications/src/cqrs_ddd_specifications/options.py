"""Query options: ordering, paging (offset or keyset cursor), projection, distinct, grouping.

``order_by`` entries are field paths, ``-field`` meaning descending. NULLs sort after every value
ascending and before every value descending (PostgreSQL's default), on every backend.

Keyset pagination: a cursor is an opaque string holding the ordering fields and the values of the
last row of the previous page (see :func:`encode_cursor`). The SQL package's
``encode_cursor(row, options)`` builds it from the last row; pass it back as ``cursor=`` to get the
next page. A cursor excludes ``offset``.

Example:
    >>> opts = QueryOptions(order_by=["-created_at", "id"], limit=20)
    >>> QueryOptions.from_dict(opts.to_dict()) == opts
    True
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cqrs_ddd_core.errors import (
    FieldNotFoundError,
    InvalidSpecificationError,
    InvalidValueError,
)

from .codec import dumps, loads

__all__ = ["OrderField", "QueryOptions", "decode_cursor", "encode_cursor"]


@dataclass(frozen=True, slots=True)
class OrderField:
    """One ``order_by`` entry."""

    field: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> OrderField:
        """Parse ``"-created_at"`` / ``"+id"`` / ``"id"``."""
        if not isinstance(text, str) or not text.strip("+- "):
            raise InvalidSpecificationError(f"bad order_by entry {text!r}", path="order_by")
        text = text.strip()
        if text[0] in "+-":
            return cls(text[1:].strip(), text[0] == "-")
        return cls(text)

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def _strings(value: Iterable[str] | str | None, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidSpecificationError(f"{name} entries must be field names", path=name)
    return items


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(f"{name} must be a non-negative integer", path=name)
    if value >= 2**63:  # LIMIT/OFFSET are 64-bit signed in every database
        raise InvalidValueError(f"{name} is too large", path=name)
    return value


@dataclass(frozen=True)
class QueryOptions:
    """How to order, page and shape a query's result."""

    order_by: tuple[str, ...] = ()
    limit: int | None = None
    offset: int | None = None
    cursor: str | None = None
    select_fields: tuple[str, ...] = ()
    distinct: bool = False
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "order_by", _strings(self.order_by, "order_by"))
        set_(self, "select_fields", _strings(self.select_fields, "select_fields"))
        set_(self, "group_by", _strings(self.group_by, "group_by"))
        set_(self, "limit", _count(self.limit, "limit"))
        set_(self, "offset", _count(self.offset, "offset"))
        for entry in self.order_by:
            OrderField.parse(entry)
        if not isinstance(self.distinct, bool):
            raise InvalidValueError("distinct must be a boolean", path="distinct")
        if self.cursor is not None:
            if not isinstance(self.cursor, str):
                raise InvalidValueError("cursor must be a string", path="cursor")
            if self.offset:
                raise InvalidSpecificationError("a cursor and an offset exclude each other")

    @property
    def ordering(self) -> tuple[OrderField, ...]:
        """The parsed ``order_by`` entries."""
        return tuple(OrderField.parse(entry) for entry in self.order_by)

    def fields(self) -> Iterable[str]:
        """Every field path named by these options."""
        yield from (o.field for o in self.ordering)
        yield from self.select_fields
        yield from self.group_by

    def validate_fields(self, allowed_fields: Iterable[str]) -> None:
        """Raise :class:`FieldNotFoundError` for a field outside ``allowed_fields``."""
        allowed = frozenset(allowed_fields)
        for name in self.fields():
            if name not in allowed:
                raise FieldNotFoundError(name, allowed)

    def with_cursor(self, cursor: str | None) -> QueryOptions:
        """Return a copy asking for the page after ``cursor``."""
        return replace(self, cursor=cursor, offset=None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (empty/default options are left out)."""
        data: dict[str, Any] = {}
        if self.order_by:
            data["order_by"] = list(self.order_by)
        for key in ("limit", "offset", "cursor"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.select_fields:
            data["select_fields"] = list(self.select_fields)
        if self.distinct:
            data["distinct"] = True
        if self.group_by:
            data["group_by"] = list(self.group_by)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryOptions:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise InvalidSpecificationError("query options must be an object")
        known = {"order_by", "limit", "offset", "cursor", "select_fields", "distinct", "group_by"}
        extra = set(data) - known
        if extra:
            raise InvalidSpecificationError(f"unknown query options {sorted(map(str, extra))}")
        return cls(**dict(data))


def encode_cursor(order: Sequence[OrderField | str], values: Sequence[Any]) -> str:
    """Return an opaque cursor for "after the row whose ordering values are ``values``"."""
    keys = [str(o) for o in order]
    if len(keys) != len(values):
        raise InvalidValueError("one cursor value per ordering field is needed")
    raw = dumps({"k": keys, "v": list(values)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: Sequence[OrderField | str]) -> list[Any]:
    """Return the values stored in ``cursor``, checking it was made for ``order``.

    Raises:
        InvalidValueError: the cursor is malformed or belongs to another ordering.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidValueError("malformed cursor", path="cursor") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("v"), list):
        raise InvalidValueError("malformed cursor", path="cursor")
    if data.get("k") != [str(o) for o in order]:
        raise InvalidValueError("the cursor belongs to another ordering", path="cursor")
    return list(data["v"])
