"""Operator x field kind: refused at compile time with a library error, never by SQLAlchemy."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from spec_unit_models import Order
from sqlalchemy.dialects import postgresql, sqlite

from cqrs_ddd_core.errors import InvalidSpecificationError, InvalidValueError, SpecificationError
from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_persistence_sqlalchemy.specifications.applicability import RULES, field_kind
from cqrs_ddd_persistence_sqlalchemy.specifications.fields import resolve_field
from cqrs_ddd_persistence_sqlalchemy.types import JSONType
from cqrs_ddd_specifications import Condition, Operator
from cqrs_ddd_specifications.operators import LOGICAL_OPERATORS


class _Base(sa.orm.DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = "applicability_items"
    id: sa.orm.Mapped[int] = sa.orm.mapped_column(primary_key=True)
    paid: sa.orm.Mapped[bool] = sa.orm.mapped_column(sa.Boolean)
    tags: sa.orm.Mapped[Any] = sa.orm.mapped_column(JSONType())


def test_spec_every_leaf_operator_has_an_applicability_rule() -> None:
    assert set(RULES) == set(Operator) - LOGICAL_OPERATORS


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("status", "text"),
        ("total", "number"),
        ("quantity", "number"),
        ("created_at", "date/time"),
        ("ref", "UUID"),
        ("metadata", "JSON"),
        ("metadata.a.b", "JSON"),
        ("location", "geometry"),
        ("area", "geometry"),  # a geography column
    ],
)
def test_spec_field_kinds(field: str, kind: str) -> None:
    assert field_kind(resolve_field(Order, field).target) == kind


def test_spec_issue_16_ordering_on_json_or_boolean_is_a_library_error() -> None:
    # used to raise sqlalchemy.exc.ArgumentError
    with pytest.raises(InvalidValueError):
        build_sqla_filter(Item, {"op": ">", "attr": "tags", "val": True})
    for value in (1, 0.5, "x"):
        with pytest.raises(InvalidValueError, match="boolean field"):
            build_sqla_filter(Item, {"op": ">", "attr": "paid", "val": value})
    with pytest.raises(InvalidValueError, match="booleans"):
        Condition("paid", "between", [False, True])


@pytest.mark.parametrize(
    ("field", "op", "value", "error"),
    [
        ("total", "contains", "1", InvalidValueError),
        ("created_at", "regex", "^2024", InvalidValueError),
        ("ref", "ilike", "a%", InvalidValueError),
        ("total", "fts", "word", InvalidValueError),
        ("status", "st_within", "POINT(0 0)", InvalidSpecificationError),
        (
            "metadata",
            "dwithin",
            {"geometry": "POINT(0 0)", "distance": 1},
            InvalidSpecificationError,
        ),
        ("location", "eq", "POINT(0 0)", InvalidValueError),
        ("location", "gt", "POINT(0 0)", InvalidValueError),
        ("location", "contains", "POINT", InvalidValueError),
        ("status", "@>", {"a": 1}, InvalidSpecificationError),
        ("total", "all", [1], InvalidSpecificationError),
        ("metadata.tags", "all", [uuid.UUID(int=1)], InvalidValueError),  # not a JSON value
    ],
)
def test_spec_operator_not_applicable_to_field(
    field: str, op: str, value: Any, error: type[SpecificationError]
) -> None:
    for dialect in (None, "postgresql", "sqlite"):
        with pytest.raises(error):
            build_sqla_filter(Order, Condition(field, op, value), dialect=dialect)


@pytest.mark.parametrize(
    ("field", "op", "value"),
    [
        ("status", "gt", "m"),
        ("ref", "gt", "00000000-0000-0000-0000-000000000001"),
        ("created_at", "between", ["2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"]),
        ("metadata", "eq", "x"),
        ("metadata", "gt", 3),
        ("metadata.n", "lte", 2.5),
        ("metadata.name", "icontains", "x"),
        ("metadata", "fts", "word"),
        ("location", "is_null", True),
        ("location", "is_not_empty", True),
        ("customer.name", "all", ["a", "b"]),  # `all` through a relationship
    ],
)
def test_spec_applicable_combinations_still_compile(field: str, op: str, value: Any) -> None:
    for dialect, sql_dialect in (
        ("postgresql", postgresql.dialect()),
        ("sqlite", sqlite.dialect()),
    ):
        for eager in (False, True):
            expr = build_sqla_filter(
                Order, Condition(field, op, value), dialect=dialect if eager else None
            )
            assert str(sa.select(Order.id).where(expr).compile(dialect=sql_dialect))


def test_spec_untyped_hook_expressions_keep_comparisons_only() -> None:
    hooks = {"upper_status": lambda model: sa.func.upper(model.status)}  # NullType
    build_sqla_filter(Order, Condition("upper_status", "eq", "X"), hooks)
    with pytest.raises(InvalidValueError, match="untyped"):
        build_sqla_filter(Order, Condition("upper_status", "contains", "X"), hooks)
    typed = {"upper_status": lambda model: sa.type_coerce(sa.func.upper(model.status), sa.String)}
    build_sqla_filter(Order, Condition("upper_status", "contains", "X"), typed)
