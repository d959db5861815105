"""Compiled-SQL tests: every operator on both dialects, no database needed."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from spec_unit_models import Order
from sqlalchemy.dialects import postgresql, sqlite

from cqrs_ddd_core.errors import (
    FieldNotFoundError,
    InvalidSpecificationError,
    InvalidValueError,
)
from cqrs_ddd_persistence_sqlalchemy.specifications import (
    SQLAlchemyOperatorRegistry,
    apply_query_options,
    build_sqla_filter,
)
from cqrs_ddd_specifications import Condition, Operator, QueryOptions, SpecificationBuilder

DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}
POLY = "POLYGON((0 0,1 0,1 1,0 1,0 0))"
SECRET = "s3cr3t-v4lue"

#: operator -> (field, value, fragment expected on postgresql, fragment expected on sqlite)
CASES: dict[Operator, tuple[str, Any, str, str]] = {
    Operator.EQ: ("status", SECRET, "orders.status =", "orders.status ="),
    Operator.NE: ("status", SECRET, "orders.status IS NULL OR orders.status !=", "IS NULL OR"),
    Operator.GT: ("total", 1, "orders.total >", "orders.total >"),
    Operator.LT: ("total", 1, "orders.total <", "orders.total <"),
    Operator.GTE: ("total", 1, "orders.total >=", "orders.total >="),
    Operator.LTE: ("total", 1, "orders.total <=", "orders.total <="),
    Operator.IN: ("status", [SECRET], "orders.status IN", "orders.status IN"),
    Operator.NOT_IN: ("status", [SECRET], "orders.status IS NULL OR", "NOT IN"),
    Operator.ALL: ("metadata.tags", [SECRET], "@>", "json_each"),
    Operator.BETWEEN: ("total", [1, 2], "BETWEEN", "BETWEEN"),
    Operator.NOT_BETWEEN: ("total", [1, 2], "NOT", "NOT"),
    Operator.LIKE: ("status", SECRET, "LIKE", "GLOB"),
    Operator.NOT_LIKE: ("status", SECRET, "NOT LIKE", "GLOB"),
    Operator.ILIKE: ("status", SECRET, "ILIKE", "lower(orders.status) LIKE lower("),
    Operator.CONTAINS: ("status", SECRET, "LIKE", "GLOB"),
    Operator.ICONTAINS: ("status", SECRET, "ILIKE", "LIKE"),
    Operator.STARTSWITH: ("status", SECRET, "LIKE", "GLOB"),
    Operator.ISTARTSWITH: ("status", SECRET, "ILIKE", "LIKE"),
    Operator.ENDSWITH: ("status", SECRET, "LIKE", "GLOB"),
    Operator.IENDSWITH: ("status", SECRET, "ILIKE", "LIKE"),
    Operator.REGEX: ("status", SECRET, "~", "REGEXP"),
    Operator.IREGEX: ("status", SECRET, "~*", "REGEXP"),
    Operator.IS_NULL: ("status", True, "orders.status IS NULL", "orders.status IS NULL"),
    Operator.IS_NOT_NULL: ("status", True, "IS NOT NULL", "IS NOT NULL"),
    Operator.IS_EMPTY: ("status", True, "IS NULL OR orders.status =", "IS NULL OR"),
    Operator.IS_NOT_EMPTY: ("status", True, "NOT", "NOT"),
    Operator.JSON_CONTAINS: ("metadata", {SECRET: [1]}, "@>", "json_each"),
    Operator.JSON_CONTAINED_BY: ("metadata", {SECRET: 1}, "<@", "NOT (EXISTS"),
    Operator.JSON_HAS_KEY: ("metadata", SECRET, "?", "json_each"),
    Operator.JSON_HAS_ANY: ("metadata", [SECRET], "?|", "json_each"),
    Operator.JSON_HAS_ALL: ("metadata", [SECRET], "?&", "json_each"),
    Operator.JSON_PATH_EXISTS: ("metadata", "$.a", "jsonb_path_exists", "json_type"),
    Operator.INTERSECTS: ("location", POLY, "ST_Intersects", "ST_Intersects"),
    Operator.WITHIN: ("location", POLY, "ST_Within(orders.location, ST_GeomFromText", "ST_Within"),
    Operator.CONTAINS_GEOM: ("location", POLY, "ST_Contains", "ST_Contains"),
    Operator.TOUCHES: ("location", POLY, "ST_Touches", "ST_Touches"),
    Operator.CROSSES: ("location", POLY, "ST_Crosses", "ST_Crosses"),
    Operator.OVERLAPS: ("location", POLY, "ST_Overlaps", "ST_Overlaps"),
    Operator.DISJOINT: ("location", POLY, "ST_Disjoint", "ST_Disjoint"),
    Operator.GEOM_EQUALS: ("location", POLY, "ST_Equals", "ST_Equals"),
    Operator.DISTANCE_LT: ("location", [POLY, 5], "ST_Distance(geography(", "ST_Distance("),
    Operator.DWITHIN: ("location", [POLY, 5], "ST_DWithin(geography(orders.location)", "<="),
    Operator.BBOX_INTERSECTS: ("location", POLY, "&&", "MbrIntersects"),
    Operator.FTS: ("description", "python programming", "websearch_to_tsquery", "GLOB"),
    Operator.FTS_PHRASE: ("description", "python programming", "phraseto_tsquery", "GLOB"),
}


def _sql(expr: Any, dialect: str) -> tuple[str, dict[str, Any]]:
    compiled = sa.select(Order.id).where(expr).compile(dialect=DIALECTS[dialect])
    return str(compiled), dict(compiled.params)


def test_spec_every_leaf_operator_has_a_case() -> None:
    leaf_ops = set(Operator) - {Operator.AND, Operator.OR, Operator.NOT}
    assert leaf_ops == set(CASES)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("op", sorted(CASES, key=lambda o: o.value), ids=lambda o: o.name)
def test_spec_operator_compiles_with_bound_values(op: Operator, dialect: str) -> None:
    field, value, pg_fragment, sqlite_fragment = CASES[op]
    for eager in (False, True):
        expr = build_sqla_filter(
            Order, Condition(field, op, value), dialect=dialect if eager else None
        )
        sql, params = _sql(expr, dialect)
        assert (pg_fragment if dialect == "postgresql" else sqlite_fragment) in sql
        assert SECRET not in sql  # every user value is a bound parameter
        if isinstance(value, str) and SECRET in value:
            assert any(SECRET in str(p) for p in params.values())


def test_spec_seed_example_compiles() -> None:
    spec = (
        SpecificationBuilder().where("status", "eq", "active").and_where("total", "gt", 100).build()
    )
    sql, params = _sql(build_sqla_filter(Order, spec.to_dict()), "postgresql")
    assert "orders.status = %(status_1)s" in sql
    assert "orders.total > %(total_1)s" in sql
    assert params == {"status_1": "active", "total_1": 100}


def test_spec_like_escaping() -> None:
    _, params = _sql(
        build_sqla_filter(Order, Condition("status", "contains", "50%_o\\ff")), "postgresql"
    )
    assert list(params.values()) == ["%50\\%\\_o\\\\ff%"]
    _, params = _sql(build_sqla_filter(Order, Condition("status", "startswith", "a*?[b")), "sqlite")
    assert list(params.values()) == ["a[*][?][[]b*"]


def test_spec_negation_pushdown_keeps_nulls() -> None:
    sql, _ = _sql(build_sqla_filter(Order, ~Condition("total", "gt", 5)), "postgresql")
    assert "orders.total IS NULL OR NOT" in sql or "orders.total IS NULL OR orders.total <=" in sql
    sql, _ = _sql(build_sqla_filter(Order, ~Condition("status", "ne", "x")), "postgresql")
    # SQLAlchemy 2.1 adds a ``::VARCHAR`` cast to the parameter, 2.0 does not.
    assert sql.removesuffix("::VARCHAR").endswith("orders.status = %(status_1)s")


def test_spec_relationship_paths_become_exists() -> None:
    sql, _ = _sql(build_sqla_filter(Order, Condition("customer.name", "eq", "x")), "sqlite")
    assert "EXISTS (SELECT 1" in sql
    assert "customers.id = orders.customer_id" in sql


def test_spec_fts_config_and_inline_regconfig() -> None:
    expr = build_sqla_filter(Order, Condition("description", "fts", "a b"), dialect="postgresql")
    compiled = (
        sa.select(Order.id)
        .where(expr)
        .compile(dialect=DIALECTS["postgresql"], compile_kwargs={"render_postcompile": True})
    )
    assert "to_tsvector(CAST('english' AS REGCONFIG), orders.description)" in str(compiled)


def test_spec_unknown_field_has_suggestions() -> None:
    with pytest.raises(FieldNotFoundError) as info:
        build_sqla_filter(Order, {"op": "=", "attr": "statsu", "val": 1})
    assert "status" in info.value.suggestions


def test_spec_json_ops_need_json_fields_and_values_are_coerced() -> None:
    with pytest.raises(InvalidSpecificationError):
        build_sqla_filter(Order, Condition("status", "@>", {"a": 1}))
    with pytest.raises(InvalidValueError):
        build_sqla_filter(Order, Condition("quantity", "eq", "abc"))
    with pytest.raises(InvalidValueError):
        build_sqla_filter(Order, Condition("quantity", "gt", 10**30))
    with pytest.raises(InvalidValueError):
        build_sqla_filter(Order, Condition("total", "contains", "1"))
    expr = build_sqla_filter(Order, Condition("created_at", "gt", "2024-01-01T00:00:00+00:00"))
    assert _sql(expr, "sqlite")[1]["created_at_1"].year == 2024


def test_spec_registry_override_per_dialect() -> None:
    registry = SQLAlchemyOperatorRegistry.default().copy()

    @registry.register(Operator.EQ, dialect="sqlite")
    def _eq(ctx: Any, target: Any, value: Any) -> Any:
        return sa.func.upper(target.expr) == value

    expr = build_sqla_filter(Order, Condition("status", "eq", "x"), registry=registry)
    assert "upper(orders.status)" in _sql(expr, "sqlite")[0]
    assert "upper" not in _sql(expr, "postgresql")[0]


def test_spec_resolution_hooks() -> None:
    hooks = {"status_upper": lambda model: sa.func.upper(model.status)}
    expr = build_sqla_filter(Order, Condition("status_upper", "eq", "X"), hooks)
    assert "upper(orders.status) =" in _sql(expr, "postgresql")[0]


def test_spec_query_options_compile() -> None:
    opts = QueryOptions(order_by=["-created_at", "status"], limit=10, offset=5)
    sql = str(
        apply_query_options(sa.select(Order), Order, opts).compile(dialect=DIALECTS["sqlite"])
    )
    assert "ORDER BY orders.created_at DESC NULLS FIRST, orders.status ASC NULLS LAST" in sql
    assert "LIMIT ? OFFSET ?" in sql
    with pytest.raises(FieldNotFoundError):
        apply_query_options(sa.select(Order), Order, QueryOptions(order_by=["nope"]))
    with pytest.raises(FieldNotFoundError):
        apply_query_options(sa.select(Order), Order, QueryOptions(group_by=["nope"]))
    with pytest.raises(FieldNotFoundError):
        apply_query_options(sa.select(Order), Order, QueryOptions(select_fields=["nope"]))
