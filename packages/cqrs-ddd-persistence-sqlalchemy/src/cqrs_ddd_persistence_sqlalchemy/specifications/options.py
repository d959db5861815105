"""``apply_query_options``: ordering, keyset or offset paging, projection, distinct, grouping.

Every field is resolved against the model (``FieldNotFoundError`` with suggestions). NULLs sort
last ascending and first descending on every dialect (``NULLS LAST`` / ``NULLS FIRST``).

Keyset pagination: the keyset is ``order_by`` plus the primary key columns not already in it (a
total order). Fetch a page with ``options`` (``cursor=None`` for the first), then
``encode_cursor(last_row, model, options)`` gives the cursor of the next page:
``options.with_cursor(cursor)``. The seek predicate handles NULLs with the same placement.

Example:
    >>> stmt = apply_query_options(select(OrderModel), OrderModel, QueryOptions(
    ...     order_by=["-created_at"], limit=20))
    >>> rows = (await session.scalars(stmt)).all()
    >>> next_page = options.with_cursor(encode_cursor(rows[-1], OrderModel, options))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import Target
from cqrs_ddd_specifications import OrderField, QueryOptions
from cqrs_ddd_specifications import decode_cursor as decode
from cqrs_ddd_specifications import encode_cursor as encode

from .coercion import coerce
from .fields import Hooks, attribute_key, resolve_field

__all__ = ["apply_query_options", "encode_cursor", "keyset"]

SelectT = TypeVar("SelectT", bound=Select[Any])


def _column(model: type[Any], field: str, hooks: Hooks | None, what: str) -> Target:
    resolved = resolve_field(model, field, hooks, path=what)
    if resolved.hops or resolved.target.json_path:
        raise InvalidSpecificationError(
            f"{field!r}: {what} takes columns of the model (use a resolution hook for expressions)",
            path=what,
        )
    return resolved.target


def keyset(model: type[Any], options: QueryOptions) -> tuple[OrderField, ...]:
    """The ordering a cursor is built on: ``order_by`` plus the missing primary key columns."""
    order = list(options.ordering)
    mapper = sa.inspect(model)
    named = {o.field for o in order}
    for column in mapper.primary_key:
        key = mapper.get_property_by_column(column).key
        if key not in named and column.name not in named:
            order.append(OrderField(key))
    return tuple(order)


def _seek(targets: Sequence[Target], order: Sequence[OrderField], values: list[Any]) -> Any:
    clauses = []
    for index, (target, field) in enumerate(zip(targets, order, strict=True)):
        prefix = [_equal(t, v) for t, v in zip(targets[:index], values[:index], strict=True)]
        clauses.append(sa.and_(*prefix, _after(target, field, values[index])))
    return sa.or_(*clauses)


def _equal(target: Target, value: Any) -> ColumnElement[bool]:
    return target.expr.is_(None) if value is None else target.expr == value


def _after(target: Target, field: OrderField, value: Any) -> ColumnElement[bool]:
    column = target.expr
    if field.descending:  # NULLs first, then values high to low
        return column.is_not(None) if value is None else column < value
    if value is None:  # NULLs last: nothing comes after a NULL but more NULLs
        return sa.false()
    return sa.or_(column > value, column.is_(None))


def apply_query_options(
    stmt: SelectT,
    model: type[Any],
    options: QueryOptions | Mapping[str, Any] | None,
    hooks: Hooks | None = None,
) -> SelectT:
    """Apply ``options`` to ``stmt`` (a ``select()`` over ``model``).

    ``select_fields`` replaces the selected columns (rows instead of entities); ``distinct`` adds
    ``DISTINCT``; ``group_by`` adds ``GROUP BY``; a ``cursor`` adds the keyset seek predicate and
    orders by the full keyset.

    Raises:
        SpecificationError: unknown field, malformed cursor or a cursor for another ordering.
    """
    if options is None:
        return stmt
    if isinstance(options, Mapping):
        options = QueryOptions.from_dict(options)
    # a paged query is ordered by the full keyset, so the first page and the pages fetched by
    # cursor agree on the order of ties
    paged = options.cursor is not None or (
        options.limit is not None and not options.distinct and not options.group_by
    )
    order = keyset(model, options) if paged and options.ordering else options.ordering
    if options.cursor:
        order = keyset(model, options)
    targets = [_column(model, o.field, hooks, "order_by") for o in order]
    if options.cursor:
        values = decode(options.cursor, order)
        values = [v if v is None else coerce(t, v) for t, v in zip(targets, values, strict=True)]
        stmt = stmt.where(_seek(targets, order, values))
    if order:
        stmt = stmt.order_by(
            *[
                t.expr.desc().nulls_first() if o.descending else t.expr.asc().nulls_last()
                for t, o in zip(targets, order, strict=True)
            ]
        )
    if options.select_fields:
        columns = [_column(model, f, hooks, "select_fields") for f in options.select_fields]
        stmt = stmt.with_only_columns(  # type: ignore[assignment]
            *[c.expr.label(c.name) for c in columns]
        )
    if options.group_by:
        stmt = stmt.group_by(*[_column(model, f, hooks, "group_by").expr for f in options.group_by])
    if options.distinct:
        stmt = stmt.distinct()
    if options.offset:
        stmt = stmt.offset(options.offset)
    if options.limit is not None:
        stmt = stmt.limit(options.limit)
    _check_shape(options)  # after the fields were resolved: unknown fields are reported first
    return stmt


def _check_shape(options: QueryOptions) -> None:
    """Refuse option combinations that are not valid SQL (instead of a driver error later)."""
    ordered = {o.field for o in options.ordering}
    if options.group_by:
        grouped = set(options.group_by)
        if not options.select_fields or not set(options.select_fields) <= grouped:
            raise InvalidSpecificationError(
                "with group_by, select_fields must be given and be among the group_by fields",
                path="group_by",
            )
        if not ordered <= grouped:
            raise InvalidSpecificationError(
                "with group_by, order_by may only name group_by fields", path="order_by"
            )
    if options.cursor is not None and (
        options.group_by or (options.distinct and options.select_fields)
    ):
        raise InvalidSpecificationError(
            "a cursor cannot page a distinct or grouped query", path="cursor"
        )
    if options.distinct and options.select_fields and not ordered <= set(options.select_fields):
        raise InvalidSpecificationError(
            "with distinct select_fields, order_by may only name selected fields",
            path="order_by",
        )


def encode_cursor(row: Any, model: type[Any], options: QueryOptions) -> str:
    """The cursor of the page after ``row`` (an instance of ``model``, or a row / mapping)."""
    order = keyset(model, options)
    mapper = sa.inspect(model)
    values = []
    for field in order:
        _column(model, field.field, None, "order_by")
        key = attribute_key(mapper, field.field) or field.field
        if isinstance(row, Mapping):
            values.append(row.get(key, row.get(field.field)))
        else:
            values.append(getattr(row, key))
    return encode(order, values)
