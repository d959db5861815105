"""Apply :class:`QueryOptions` to an in-memory sequence (for in-memory repositories and tests).

Ordering, NULL placement and keyset cursors follow exactly the rules of the SQL compiler:
NULLs last ascending, first descending; the keyset is the ordering plus a tie-breaker field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from cqrs_ddd_core.errors import InvalidValueError

from .evaluator import resolve_path
from .options import OrderField, QueryOptions, decode_cursor, encode_cursor

__all__ = ["apply_options", "keyset", "next_cursor"]

T = TypeVar("T")


def keyset(options: QueryOptions, tiebreaker: str | None = "id") -> tuple[OrderField, ...]:
    """The ordering a cursor is built on: ``order_by`` plus ``tiebreaker`` if absent."""
    order = options.ordering
    if tiebreaker and all(o.field != tiebreaker for o in order):
        order = (*order, OrderField(tiebreaker))
    return order


def _value(item: Any, field: str) -> Any:
    values = resolve_path(item, field)
    return values[0] if values else None


def _compare_values(a: Any, b: Any, descending: bool) -> int:
    if a is None and b is None:
        return 0
    if a is None:  # NULL is greater than every value
        result = 1
    elif b is None:
        result = -1
    else:
        try:
            result = (a > b) - (a < b)
        except TypeError as exc:
            raise InvalidValueError(f"cannot order {a!r} against {b!r}") from exc
    return -result if descending else result


def _compare_keys(order: Sequence[OrderField], left: Sequence[Any], right: Sequence[Any]) -> int:
    for field, a, b in zip(order, left, right, strict=True):
        result = _compare_values(a, b, field.descending)
        if result:
            return result
    return 0


def next_cursor(item: Any, options: QueryOptions, *, tiebreaker: str | None = "id") -> str:
    """The cursor of the page that follows ``item`` (the last item of a page)."""
    order = keyset(options, tiebreaker)
    return encode_cursor(order, [_value(item, o.field) for o in order])


def apply_options(
    items: Iterable[T], options: QueryOptions, *, tiebreaker: str | None = "id"
) -> list[T]:
    """Order, seek (cursor), skip and cut ``items`` as the SQL compiler would."""
    rows = list(items)
    order = keyset(options, tiebreaker) if options.cursor else options.ordering
    if order:
        rows.sort(
            key=functools.cmp_to_key(
                lambda a, b: _compare_keys(
                    order, [_value(a, o.field) for o in order], [_value(b, o.field) for o in order]
                )
            )
        )
    if options.cursor:
        after = decode_cursor(options.cursor, order)
        rows = [
            r for r in rows if _compare_keys(order, [_value(r, o.field) for o in order], after) > 0
        ]
    if options.offset:
        rows = rows[options.offset :]
    if options.limit is not None:
        rows = rows[: options.limit]
    return rows
