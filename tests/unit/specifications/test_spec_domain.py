"""The specification domain package: operators, AST, builder, options, evaluator."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest

from cqrs_ddd_core.errors import (
    FieldNotFoundError,
    InvalidSpecificationError,
    InvalidValueError,
    OperatorNotFoundError,
)
from cqrs_ddd_specifications import (
    Condition,
    Operator,
    QueryOptions,
    Specification,
    SpecificationBuilder,
    apply_options,
    resolve_operator,
)
from cqrs_ddd_specifications.paging import next_cursor


@pytest.mark.parametrize(
    ("alias", "op"),
    [
        ("eq", Operator.EQ),
        ("NE", Operator.NE),
        ("gt", Operator.GT),
        ("gte", Operator.GTE),
        ("ge", Operator.GTE),
        ("lt", Operator.LT),
        ("lte", Operator.LTE),
        ("le", Operator.LTE),
        ("@>", Operator.JSON_CONTAINS),
        ("<@", Operator.JSON_CONTAINED_BY),
        ("?", Operator.JSON_HAS_KEY),
        ("?|", Operator.JSON_HAS_ANY),
        ("?&", Operator.JSON_HAS_ALL),
        ("st_within", Operator.WITHIN),
        ("ST_Intersects", Operator.INTERSECTS),
        ("st_contains", Operator.CONTAINS_GEOM),
        ("st_dwithin", Operator.DWITHIN),
        ("st_touches", Operator.TOUCHES),
        ("st_crosses", Operator.CROSSES),
        ("st_overlaps", Operator.OVERLAPS),
        ("st_disjoint", Operator.DISJOINT),
        ("st_equals", Operator.GEOM_EQUALS),
        ("starts_with", Operator.STARTSWITH),
        ("ends_with", Operator.ENDSWITH),
        ("null", Operator.IS_NULL),
        ("not_null", Operator.IS_NOT_NULL),
        ("=", Operator.EQ),
        ("FTS", Operator.FTS),
    ],
)
def test_spec_aliases(alias: str, op: Operator) -> None:
    assert resolve_operator(alias) is op


def test_spec_unknown_operator_suggests() -> None:
    with pytest.raises(OperatorNotFoundError) as info:
        resolve_operator("startswit")
    assert "startswith" in info.value.suggestions


def test_spec_json_round_trip_preserves_types() -> None:
    when = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    ref = uuid.uuid4()
    spec = (
        Condition("created_at", "gt", when)
        & Condition("ref", "eq", ref)
        & ~Condition("total", "between", [Decimal("1.5"), Decimal("2.5")])
    )
    again = Specification.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict()["conditions"][0]["val"] == when
    assert Specification.from_dict(spec.to_dict()) == spec


def test_spec_from_dict_validation_paths() -> None:
    with pytest.raises(InvalidSpecificationError, match=r"conditions\[1\]"):
        Specification.from_dict(
            {"op": "and", "conditions": [{"op": "=", "attr": "a", "val": 1}, 3]}
        )
    with pytest.raises(OperatorNotFoundError, match=r"conditions\[0\]"):
        Specification.from_dict({"op": "or", "conditions": [{"op": "eqq", "attr": "a", "val": 1}]})
    with pytest.raises(InvalidValueError):
        Specification.from_dict({"op": "in", "attr": "a", "val": 3})
    with pytest.raises(FieldNotFoundError):
        Specification.from_dict({"op": "=", "attr": "secret", "val": 1}, allowed_fields=["a"])
    not_spec = Specification.from_dict(
        {"op": "not", "conditions": [{"op": "=", "attr": "a", "val": 1}]}
    )
    assert not_spec == ~Condition("a", "=", 1)


def test_spec_builder_groups_and_reuse() -> None:
    builder = SpecificationBuilder()
    spec = (
        builder.where("a", "eq", 1)
        .or_where("b", "eq", 2)
        .and_where("c", "eq", 3)
        .not_group()
        .where("d", "eq", 4)
        .end_group()
        .build()
    )
    assert spec.is_satisfied_by({"a": 1, "b": 0, "c": 0, "d": 0})
    assert spec.is_satisfied_by({"a": 0, "b": 2, "c": 3, "d": 0})
    assert not spec.is_satisfied_by({"a": 0, "b": 2, "c": 3, "d": 4})
    second = builder.where("x", "eq", 1).build()  # the builder was reset
    assert second == Condition("x", "eq", 1)
    with pytest.raises(InvalidSpecificationError):
        SpecificationBuilder().and_group().where("a", "eq", 1).build()


def test_spec_evaluator_objects_dicts_and_null_semantics() -> None:
    obj = SimpleNamespace(status=None, total=5, meta={"tags": ["a"]}, items=[])
    assert Condition("status", "ne", "x").is_satisfied_by(obj)
    assert Condition("status", "not_in", ["x"]).is_satisfied_by(obj)
    assert not Condition("status", "eq", "x").is_satisfied_by(obj)
    assert (~Condition("status", "eq", "x")).is_satisfied_by(obj)
    assert Condition("meta.tags", "all", ["a"]).is_satisfied_by(obj)
    assert not Condition("items.sku", "ne", "x").is_satisfied_by(obj)  # EXISTS semantics
    assert Condition("meta", "@>", {"tags": ["a"]}).is_satisfied_by({"meta": {"tags": ["a", "b"]}})
    with pytest.raises(FieldNotFoundError):
        Condition("nope", "eq", 1).is_satisfied_by(obj)


def test_spec_evaluator_geometry_with_shapely() -> None:
    import shapely

    row = {"location": shapely.Point(0.5, 0.5)}
    assert Condition("location", "st_within", "POLYGON((0 0,1 0,1 1,0 1,0 0))").is_satisfied_by(row)
    assert Condition(
        "location", "dwithin", {"geometry": "POINT(0 0)", "distance": 1}
    ).is_satisfied_by(row)


def test_spec_query_options_round_trip_and_paging() -> None:
    opts = QueryOptions(order_by=["-total", "id"], limit=2, select_fields=["id"], group_by=["id"])
    assert QueryOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(InvalidSpecificationError):
        QueryOptions.from_dict({"limt": 1})
    rows = [{"id": i, "total": t} for i, t in enumerate([3, None, 1, 3, 2])]
    page1 = apply_options(rows, QueryOptions(order_by=["-total"], limit=2))
    assert [r["id"] for r in page1] == [1, 0]
    page2 = apply_options(
        rows,
        QueryOptions(
            order_by=["-total"],
            limit=2,
            cursor=next_cursor(page1[-1], QueryOptions(order_by=["-total"])),
        ),
    )
    assert [r["id"] for r in page2] == [3, 4]
    with pytest.raises(InvalidValueError):
        apply_options(rows, QueryOptions(order_by=["total"], cursor="garbage!"))
