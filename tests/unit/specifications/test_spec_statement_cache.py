"""Specification filters built for a dialect are cacheable statements; field resolution is
memoised in a bounded cache that only ever holds fields that resolved."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from spec_unit_models import Customer, Order
from sqlalchemy.dialects import postgresql, sqlite
from test_spec_compiler_sql import CASES, SECRET

from cqrs_ddd_core.errors import (
    FieldNotFoundError,
    InvalidSpecificationError,
    OperatorNotFoundError,
    SpecificationError,
)
from cqrs_ddd_persistence_sqlalchemy.specifications import (
    SQLAlchemyOperatorRegistry,
    build_sqla_filter,
    resolve_field,
)
from cqrs_ddd_persistence_sqlalchemy.specifications import fields as fields_module
from cqrs_ddd_specifications import Condition, Operator

DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}


def _other(value: Any) -> Any:
    """Another value of the same shape (another secret, number, polygon, path, phrase)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return (
            value.replace(SECRET, "another-value")
            .replace("0 0,1 0", "0 0,2 0")
            .replace("$.a", "$.b")
            .replace("python", "rust")
        )
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [_other(v) for v in value]
    if isinstance(value, dict):
        return {_other(k): _other(v) for k, v in value.items()}
    return value


def _statement(op: Operator, value: Any, dialect: str | None) -> sa.Select[Any]:
    field = CASES[op][0]
    return sa.select(Order.id).where(
        build_sqla_filter(Order, Condition(field, op, value), dialect=dialect)
    )


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("op", sorted(CASES, key=lambda o: o.value), ids=lambda o: o.name)
def test_spec_filters_built_for_a_dialect_share_one_compiled_statement(
    op: Operator, dialect: str
) -> None:
    value = CASES[op][1]
    first, second = _statement(op, value, dialect), _statement(op, _other(value), dialect)
    key = first._generate_cache_key()
    assert key is not None, "a filter built for its dialect must be cacheable"
    assert key == second._generate_cache_key()  # values are bound parameters, not SQL text
    # what Connection.execute does: the second statement reuses the first one's compilation
    cache: dict[Any, Any] = {}
    stats = [
        stmt._compile_w_cache(DIALECTS[dialect], compiled_cache=cache, column_keys=[])[-1]
        for stmt in (first, second)
    ]
    assert [s.name for s in stats] == ["CACHE_MISS", "CACHE_HIT"]
    assert len(cache) == 1


def test_spec_deferred_dialect_leaves_are_not_cacheable() -> None:
    # the reason the repository and the projection store pass the session's dialect
    assert _statement(Operator.STARTSWITH, "x", None)._generate_cache_key() is None
    assert _statement(Operator.STARTSWITH, "x", "sqlite")._generate_cache_key() is not None
    assert _statement(Operator.EQ, "x", None)._generate_cache_key() is not None  # portable


def test_spec_field_resolution_is_memoised_per_model_and_path() -> None:
    first = resolve_field(Order, "customer.name")
    assert resolve_field(Order, "customer.name") is first
    assert first.hops and first.hops[0][0] is Order and first.target.model is Customer
    # the caller's path is kept (it is part of error messages), the memo is not copied otherwise
    in_options = resolve_field(Order, "customer.name", path="order_by")
    assert in_options.target.path == "order_by" and first.target.path == "$"
    assert in_options.target.expr is first.target.expr
    # a mapped attribute and its column name resolve to the same column
    assert resolve_field(Order, "metadata").target.expr is not None
    assert str(resolve_field(Order, "meta").target.expr) == str(
        resolve_field(Order, "metadata").target.expr
    )


def test_spec_hooks_take_precedence_over_the_memo() -> None:
    resolve_field(Order, "status")  # memoised without hooks
    hooked = resolve_field(Order, "status", {"status": sa.func.upper(Order.status)})
    assert "upper" in str(hooked.target.expr)
    assert "upper" not in str(resolve_field(Order, "status").target.expr)


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("statsu", FieldNotFoundError),
        ("status.x", FieldNotFoundError),  # keys after a column that is not JSON
        ("customer", InvalidSpecificationError),  # a relationship, not a field
        ("customer.nope", FieldNotFoundError),
        ('metadata.a"b', InvalidSpecificationError),
        ("metadata.a\\b", InvalidSpecificationError),
        ("status'; DROP TABLE orders; --", FieldNotFoundError),
    ],
)
def test_spec_unresolvable_fields_raise_every_time_and_are_never_cached(
    field: str, error: type[SpecificationError]
) -> None:
    before = fields_module._memoised.cache_info().currsize
    for path in ("$", "order_by", "$"):
        with pytest.raises(error) as info:
            resolve_field(Order, field, path=path)
        assert info.value.path == path  # reported where the caller said, not where first seen
    assert fields_module._memoised.cache_info().currsize == before


def test_spec_hostile_specs_keep_raising_library_errors() -> None:
    for _ in range(2):  # once cold, once with whatever the first call memoised
        with pytest.raises(FieldNotFoundError):
            build_sqla_filter(Order, {"op": "=", "attr": "1=1 OR id", "val": 1}, dialect="sqlite")
        with pytest.raises(OperatorNotFoundError):
            build_sqla_filter(Order, {"op": "; DELETE", "attr": "status", "val": 1})
        with pytest.raises(InvalidSpecificationError):
            build_sqla_filter(Order, Condition("status", "@>", {"a": 1}), dialect="postgresql")


def test_spec_field_memo_is_bounded_under_endless_json_keys() -> None:
    # JSON keys are caller-chosen and always valid: the memo must not grow without limit
    maxsize = fields_module._memoised.cache_info().maxsize
    assert maxsize == fields_module.CACHE_SIZE
    for i in range(maxsize + 500):
        resolve_field(Order, f"metadata.k{i}")
    assert fields_module._memoised.cache_info().currsize <= maxsize
    assert resolve_field(Order, "metadata.k0").target.json_path == ("k0",)


def test_spec_registry_portability_memo_follows_overrides() -> None:
    registry = SQLAlchemyOperatorRegistry.default().copy()
    assert registry.is_portable(Operator.EQ)
    registry.add(Operator.EQ, lambda ctx, target, value: target.expr == value, dialect="sqlite")
    assert not registry.is_portable(Operator.EQ)  # add() forgets the memoised answer
    assert SQLAlchemyOperatorRegistry.default().is_portable(Operator.EQ)
