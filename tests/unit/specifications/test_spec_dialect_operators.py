"""Dialect-specific operators come from each dialect's ``DialectSupport`` (``spec_operators``,
``json_access``); dialect names are user-facing keys only, resolved by the dialects package."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from spec_unit_models import Order
from sqlalchemy.dialects import postgresql, sqlite

import cqrs_ddd_persistence_sqlalchemy.dialects as dialects_package
from cqrs_ddd_core.errors import ConfigurationError, InvalidSpecificationError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED, dialect_for, support_named
from cqrs_ddd_persistence_sqlalchemy.specifications import (
    SQLAlchemyOperatorRegistry,
    build_sqla_filter,
)
from cqrs_ddd_specifications import Condition, Operator
from cqrs_ddd_specifications.operators import FTS_OPERATORS, GEOMETRY_OPERATORS, JSON_OPERATORS

DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}
#: Dialect-specific leaves: (field, operator, value).
LEAVES = [
    ("status", Operator.STARTSWITH, "ab"),
    ("description", Operator.FTS, "python programming"),
    ("metadata", Operator.JSON_CONTAINS, {"a": [1]}),
    ("metadata.tags", Operator.ALL, ["x"]),
    ("location", Operator.WITHIN, "POLYGON((0 0,1 0,1 1,0 1,0 0))"),
]


def _sql(expr: Any, name: str) -> str:
    return str(sa.select(Order.id).where(expr).compile(dialect=DIALECTS[name]))


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_spec_each_dialect_brings_its_json_fts_and_geometry_operators(name: str) -> None:
    support = dialect_for(DIALECTS[name])
    assert support is support_named(name)
    assert {*JSON_OPERATORS, *FTS_OPERATORS, *GEOMETRY_OPERATORS, Operator.ALL} <= set(
        support.spec_operators
    )
    assert support.json_access is not None
    # the shared registry holds the portable operators only: dialects bring their own
    default = SQLAlchemyOperatorRegistry.default()
    assert all(default.find(op, None) is None for op in JSON_OPERATORS | FTS_OPERATORS)


@pytest.mark.parametrize("name", sorted(DIALECTS))
@pytest.mark.parametrize(("field", "op", "value"), LEAVES, ids=lambda v: str(v)[:20])
def test_spec_dialect_by_name_or_by_support_builds_the_same_cacheable_sql(
    name: str, field: str, op: Operator, value: Any
) -> None:
    by_name = build_sqla_filter(Order, Condition(field, op, value), dialect=name)
    support = dialect_for(DIALECTS[name])
    by_support = build_sqla_filter(Order, Condition(field, op, value), dialect=support)
    deferred = build_sqla_filter(Order, Condition(field, op, value))
    assert _sql(by_name, name) == _sql(by_support, name)
    # deferred leaves ask dialect_for(compiler.dialect) at compile time: the same SQL
    assert "(" + _sql(by_name, name).split("WHERE ", 1)[1] + ")" in _sql(deferred, name)
    statements = [sa.select(Order.id).where(e) for e in (by_name, by_support)]
    key = statements[0]._generate_cache_key()
    assert key is not None and key == statements[1]._generate_cache_key()


def test_spec_unknown_dialect_names_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="mysql"):
        build_sqla_filter(Order, Condition("status", "eq", "x"), dialect="mysql")
    registry = SQLAlchemyOperatorRegistry.default().copy()
    with pytest.raises(ConfigurationError, match="mysql"):
        registry.add(Operator.EQ, lambda ctx, target, value: target.expr == value, dialect="mysql")
    with pytest.raises(ConfigurationError, match="oracle"):
        registry.set_json_access("oracle", dialect_for(DIALECTS["sqlite"]).json_access)


def test_spec_registry_override_beats_the_dialects_own_operator_on_that_dialect_only() -> None:
    registry = SQLAlchemyOperatorRegistry.default().copy()

    @registry.register(Operator.FTS, dialect=support_named("postgresql"))
    def _fts(ctx: Any, target: Any, value: Any) -> Any:
        return sa.func.my_search(target.expr, value)

    leaf = Condition("description", "fts", "python")
    built = build_sqla_filter(Order, leaf, registry=registry, dialect="postgresql")
    assert "my_search(orders.description" in _sql(built, "postgresql")
    deferred = build_sqla_filter(Order, leaf, registry=registry)
    assert "my_search" in _sql(deferred, "postgresql")
    assert "my_search" not in _sql(deferred, "sqlite")  # SQLite keeps its own
    untouched = build_sqla_filter(Order, leaf, dialect="postgresql")
    assert "websearch_to_tsquery" in _sql(untouched, "postgresql")


def test_spec_portable_override_does_not_shadow_a_dialects_own_operator() -> None:
    registry = SQLAlchemyOperatorRegistry.default().copy()
    registry.add(Operator.STARTSWITH, lambda ctx, target, value: sa.func.portable(target.expr))
    leaf = Condition("status", "startswith", "ab")
    assert "GLOB" in _sql(build_sqla_filter(Order, leaf, registry=registry), "sqlite")
    assert "portable(" in _sql(build_sqla_filter(Order, leaf, registry=registry), "postgresql")


def test_spec_set_json_access_overrides_the_dialects_reader() -> None:
    sqlite_json = dialect_for(DIALECTS["sqlite"]).json_access

    class Upper:
        def scalar(self, column: Any, keys: Any, kind: Any) -> Any:
            return sa.func.upper(sqlite_json.scalar(column, keys, kind))

        def is_null(self, column: Any, keys: Any) -> Any:
            return sqlite_json.is_null(column, keys)

        def is_empty(self, column: Any, keys: Any) -> Any:
            return sqlite_json.is_empty(column, keys)

    registry = SQLAlchemyOperatorRegistry.default().copy()
    registry.set_json_access("sqlite", Upper())
    leaf = Condition("metadata.name", "eq", "X")
    assert "upper(" in _sql(build_sqla_filter(Order, leaf, registry=registry), "sqlite")
    assert "upper(" not in _sql(build_sqla_filter(Order, leaf, registry=registry), "postgresql")
    assert "upper(" not in _sql(build_sqla_filter(Order, leaf), "sqlite")


def test_spec_deferred_leaf_is_validated_on_every_dialect_at_build_time() -> None:
    # an override that refuses a value on SQLite only: refused when the filter is built, not
    # later when a SQLite session compiles it
    registry = SQLAlchemyOperatorRegistry.default().copy()

    @registry.register(Operator.FTS, dialect="sqlite")
    def _strict(ctx: Any, target: Any, value: Any) -> Any:
        if "*" in value:
            raise InvalidValueError("no wildcards here")
        return sa.true()

    with pytest.raises(InvalidValueError):
        build_sqla_filter(Order, Condition("description", "fts", "py*"), registry=registry)
    build_sqla_filter(Order, Condition("description", "fts", "py"), registry=registry)


def test_spec_deferred_leaf_on_an_unsupported_dialect_takes_the_portable_form() -> None:
    # str(statement) compiles with SQLAlchemy's default dialect, which the library does not
    # support: a leaf with a portable form shows it, a JSON leaf has none
    text = str(
        sa.select(Order.id).where(build_sqla_filter(Order, Condition("status", "startswith", "a")))
    )
    assert "LIKE" in text
    json_leaf = build_sqla_filter(Order, Condition("metadata", "json_has_key", "a"))
    with pytest.raises(InvalidSpecificationError, match="dialect"):
        str(sa.select(Order.id).where(json_leaf))


def test_spec_dialect_operator_modules_never_import_the_compiler() -> None:
    # the dialects sit below the specification compiler: they share only the kernel with it
    root = Path(dialects_package.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n.startswith("cqrs_ddd_persistence_sqlalchemy.specifications") for n in names):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
    assert len(SUPPORTED) == 2  # every supported dialect was checked above
