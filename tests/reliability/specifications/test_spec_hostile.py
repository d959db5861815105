"""Hostile input: clear errors from the error tree or exact literal matches, never SQL errors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from spec_db import Harness, harness
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.errors import (
    FieldNotFoundError,
    InvalidSpecificationError,
    InvalidValueError,
    OperatorNotFoundError,
    SpecificationError,
)
from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_specifications import (
    AndSpecification,
    Condition,
    NotSpecification,
    OrSpecification,
    Specification,
)

TRICKY = ["it's", "50%", "a_b", "back\\slash", "%", "_", "\\", "'", "''", "%_\\'", "plain"]


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "spec_hostile_things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    n: Mapped[int] = mapped_column(sa.Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(
        "metadata", sa.JSON().with_variant(JSONB(), "postgresql")
    )


ROWS = [
    {"id": i + 1, "name": text, "n": i, "metadata": {text: [text], "k": text}}
    for i, text in enumerate(TRICKY)
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    async def setup(conn: Any) -> None:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(sa.insert(Thing.__table__), ROWS)

    with harness(request.param, tmp_path, setup) as h:
        yield h


def _ids(db: Harness, spec: Any) -> set[int]:
    return db.ids(sa.select(Thing.id).where(build_sqla_filter(Thing, spec)))


def _expected(spec: Specification) -> set[int]:
    return {r["id"] for r in ROWS if spec.is_satisfied_by({**r, "meta": r["metadata"]})}


@pytest.mark.parametrize("text", TRICKY)
def test_spec_special_characters_match_literally(db: Harness, text: str) -> None:
    for op in ("eq", "contains", "startswith", "endswith", "icontains", "ne"):
        spec = Condition("name", op, text)
        assert _ids(db, spec) == _expected(spec), op
    for spec in (
        Condition("meta", "@>", {text: [text]}),
        Condition("meta", "?", text),
        Condition("meta", "?|", [text, "zz"]),
        Condition("meta.k", "eq", text),
    ):
        got = _ids(db, spec)
        assert got == _expected(spec), spec
        assert got  # never silently emptied


def test_spec_contains_percent_is_not_a_wildcard(db: Harness) -> None:
    assert _ids(db, Condition("name", "contains", "%")) == {2, 5, 10}
    assert _ids(db, Condition("name", "contains", "_")) == {3, 6, 10}


def test_spec_wide_ten_thousand_node_spec(db: Harness) -> None:
    leaves = [{"op": "=", "attr": "n", "val": i} for i in range(10_000)]
    spec = {"op": "or", "conditions": leaves}
    assert _ids(db, spec) == {r["id"] for r in ROWS}


def test_spec_deep_specs_are_rejected_not_recursion_errors() -> None:
    data: dict[str, Any] = {"op": "=", "attr": "n", "val": 1}
    for _ in range(10_000):
        data = {"op": "not", "condition": data}
    with pytest.raises(InvalidSpecificationError):
        Specification.from_dict(data)
    with pytest.raises(InvalidSpecificationError):
        build_sqla_filter(Thing, data)
    spec: Specification = Condition("n", "eq", 1)
    for i in range(10_000):
        spec = (
            NotSpecification(spec)
            if i % 3 == 0
            else (AndSpecification([spec]) if i % 3 == 1 else OrSpecification([spec]))
        )
    with pytest.raises(InvalidSpecificationError):
        build_sqla_filter(Thing, spec)
    with pytest.raises(InvalidSpecificationError):
        spec.is_satisfied_by({"n": 1})


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"op": "=", "attr": "nmae", "val": "x"}, FieldNotFoundError),
        ({"op": "=", "attr": "name.x", "val": "x"}, FieldNotFoundError),
        ({"op": "equals", "attr": "name", "val": "x"}, OperatorNotFoundError),
        ({"op": 5, "attr": "name", "val": "x"}, OperatorNotFoundError),
        ({"op": "in", "attr": "name", "val": "x"}, InvalidValueError),
        ({"op": "between", "attr": "n", "val": [1]}, InvalidValueError),
        ({"op": "=", "attr": "n", "val": "x"}, InvalidValueError),
        ({"op": "=", "attr": "n", "val": 2**70}, InvalidValueError),
        ({"op": "=", "attr": "n", "val": math.nan}, InvalidValueError),
        ({"op": "=", "attr": "name", "val": "nul\x00byte"}, InvalidValueError),
        ({"op": "=", "attr": "name", "val": "\ud800"}, InvalidValueError),
        ({"op": "=", "attr": "name", "val": object()}, InvalidValueError),
        ({"op": "=", "attr": "name", "val": b"bytes"}, InvalidValueError),
        ({"op": "=", "attr": "name", "val": {"a": 1}}, InvalidValueError),
        ({"op": "@>", "attr": "meta", "val": {"a": {1, 2}}}, InvalidValueError),
        ({"op": "@>", "attr": "meta", "val": {1: "non-string key"}}, InvalidValueError),
        ({"op": "@>", "attr": "meta", "val": math.inf}, InvalidValueError),
        ({"op": "regex", "attr": "name", "val": "("}, InvalidValueError),
        ({"op": "json_path_exists", "attr": "meta", "val": "$.a ? (@ > 1)"}, InvalidValueError),
        ({"op": "fts", "attr": "name", "val": "   "}, InvalidValueError),
        ({"op": "st_within", "attr": "name", "val": "not wkt"}, InvalidValueError),
        ({"op": "=", "attr": 'meta.a"b', "val": "x"}, InvalidSpecificationError),
        ({"op": "and", "conditions": []}, InvalidSpecificationError),
        (
            {"op": "and", "conditions": [{"op": "=", "attr": "n"}], "x": 1},
            InvalidSpecificationError,
        ),
        ({"op": "=", "val": 1}, InvalidSpecificationError),
        ({"attr": "n", "val": 1}, InvalidSpecificationError),
        ({"op": "@>", "attr": "name", "val": {"a": 1}}, InvalidSpecificationError),
        ({"op": "contains", "attr": "n", "val": "1"}, InvalidValueError),
    ],
)
def test_spec_bad_input_raises_library_errors(data: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        build_sqla_filter(Thing, data)
    assert isinstance(info.value, SpecificationError)
