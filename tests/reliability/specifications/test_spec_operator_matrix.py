"""Every operator x every column kind x every JSON value kind, on SQLite and PostgreSQL.

The exhaustive cross product (leaf operators of :class:`Operator` x string, integer, float,
numeric, boolean, datetime and JSON columns plus paths into JSON x values of every JSON kind:
null, bool, int, float, str, list, dict), each leaf plain and negated, compiled with and without
``dialect=``. Every combination is either

- refused with a ``SpecificationError`` (when the leaf is built or compiled), or
- compiled and executed without any error, selecting the rows the in-memory evaluator selects;

and no table changes (checksummed before and after). Geometry operators run the same matrix
against a geometry column where the geometry tests run (SpatiaLite and PostGIS). The cross
product takes a few seconds per dialect; ``CQRS_SOAK=1`` adds a long randomised run of nested
specifications (aliases, deeper JSON values) on top of the CI-sized one.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from geoalchemy2 import Geometry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_db import Harness, harness
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.errors import SpecificationError
from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime
from cqrs_ddd_specifications import ALIASES, Condition, Operator, Specification
from cqrs_ddd_specifications.operators import LOGICAL_OPERATORS

SOAK = os.environ.get("CQRS_SOAK") == "1"
RANDOM_EXAMPLES = 3000 if SOAK else 60

LEAF_OPERATORS = [op for op in Operator if op not in LOGICAL_OPERATORS]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

#: One or more values of every JSON kind, chosen to be valid for some operator each (dates, JSON
#: paths, WKT, GeoJSON, LIKE metacharacters, out-of-range integers ...).
VALUES: dict[str, list[Any]] = {
    "null": [None],
    "bool": [True, False],
    "int": [0, 3, 2**40],
    "float": [2.5, -0.5],
    "str": ["x", "", "a b", "2026-01-01T00:00:00+00:00", "$.k", "POINT(0 0)", "%_\\'"],
    "list": [[], [1, 2], ["x", "t"], [True, False], [None], [{"k": "x"}], [1, "x"], [T0, T0]],
    "dict": [
        {},
        {"k": "x"},
        {"tags": ["t"]},
        {"geometry": "POINT(0 0)", "distance": 1},
        {"type": "Point", "coordinates": [0, 0]},
    ],
}


class Base(DeclarativeBase):
    pass


class MatrixThing(Base):
    __tablename__ = "spec_matrix_things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(50))
    n: Mapped[int | None] = mapped_column(sa.Integer)
    score: Mapped[float | None] = mapped_column(sa.Float)
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    flag: Mapped[bool | None] = mapped_column(sa.Boolean)
    created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    meta: Mapped[Any] = mapped_column(JSONType(), nullable=True)


#: column kind -> field name (JSON columns also as a path to a scalar and to an array)
FIELDS = {
    "string": "name",
    "integer": "n",
    "float": "score",
    "numeric": "amount",
    "boolean": "flag",
    "datetime": "created",
    "JSON": "meta",
    "JSON path": "meta.k",
    "JSON array path": "meta.tags",
}

_EMPTY = dict.fromkeys(("name", "n", "score", "amount", "flag", "created", "meta"))
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "x",
        "n": 3,
        "score": 2.5,
        "amount": Decimal("1.50"),
        "flag": True,
        "created": T0,
        "meta": {"k": "x", "tags": ["x", "t"], "nested": {"a": 1}},
    },
    {"id": 2, **_EMPTY},
    {
        "id": 3,
        "name": "",
        "n": 0,
        "score": -0.5,
        "amount": Decimal("0.00"),
        "flag": False,
        "created": T0 + dt.timedelta(days=1),
        "meta": {},
    },
    {
        "id": 4,
        "name": "%_\\'",
        "n": -7,
        "score": 0.0,
        "amount": Decimal("-2.25"),
        "flag": True,
        "created": T0 - dt.timedelta(days=1),
        "meta": {"k": 3, "tags": [], "flag": True},
    },
    {"id": 5, **_EMPTY, "name": "a b c", "meta": {"k": None, "tags": [1, "t", True]}},
]


class GeoBase(DeclarativeBase):
    pass


class MatrixPlace(GeoBase):
    __tablename__ = "spec_matrix_places"
    id: Mapped[int] = mapped_column(primary_key=True)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326), nullable=True)


PLACES: list[dict[str, Any]] = [
    {"id": 1, "geom": "SRID=4326;POINT(0 0)"},
    {"id": 2, "geom": "SRID=4326;POLYGON((-1 -1,1 -1,1 1,-1 1,-1 -1))"},
    {"id": 3, "geom": "SRID=4326;LINESTRING(5 5,6 6)"},
    {"id": 4, "geom": None},
]


def _leaves(fields: dict[str, str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(label, leaf as a dict) for the whole cross product; None where the leaf itself is
    refused (its value does not fit its operator, whatever the field)."""
    for op in LEAF_OPERATORS:
        for kind, values in VALUES.items():
            for value in values:
                try:
                    Condition("field", op, value)
                except SpecificationError:
                    yield f"{op.value} {kind} {value!r}", None
                    continue
                for column_kind, field in fields.items():
                    yield (
                        f"{op.value} on {column_kind} with {kind} {value!r}",
                        {"op": op.value, "attr": field, "val": value},
                    )


async def _checksum(conn: AsyncConnection, table: sa.Table) -> tuple[Any, ...]:
    rows = (await conn.execute(sa.select(table).order_by(table.c.id))).all()
    names = sorted(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    return tuple(map(tuple, rows)), tuple(names)


async def _run_matrix(
    conn: AsyncConnection, model: type[Any], rows: list[dict[str, Any]], fields: dict[str, str]
) -> dict[str, Any]:
    """Run every leaf (plain and negated, deferred and eager); return counts and failures."""
    dialect = conn.dialect.name
    stats: dict[str, Any] = {"leaf refused": 0, "refused": 0, "ran": 0, "failures": []}
    for label, leaf in _leaves(fields):
        if leaf is None:
            stats["leaf refused"] += 1
            continue
        for mode in ("deferred", dialect):
            selects, specs = [], {}
            for polarity, data in (("plain", leaf), ("negated", {"op": "not", "condition": leaf})):
                try:
                    clause = build_sqla_filter(
                        model, data, dialect=None if mode == "deferred" else dialect
                    )
                except SpecificationError:
                    stats["refused"] += 1
                    continue
                except Exception as exc:  # anything else escaping is the failure looked for
                    where = f"{label} ({polarity}, {mode})"
                    stats["failures"].append(f"build: {where}: {type(exc).__name__}: {exc}")
                    continue
                specs[polarity] = Specification.from_dict(data)
                selects.append(
                    sa.select(model.id, sa.literal(polarity, sa.String).label("p")).where(clause)
                )
            if not selects:
                continue
            # both polarities in one round trip (each still a plain WHERE)
            stmt = selects[0] if len(selects) == 1 else sa.union_all(*selects)
            try:
                found = (await conn.execute(stmt)).all()
            except Exception as exc:
                stats["failures"].append(f"execute: {label} ({mode}): {type(exc).__name__}: {exc}")
                continue
            for polarity, spec in specs.items():
                stats["ran"] += 1
                got = {row[0] for row in found if row[1] == polarity}
                expected = _in_memory(spec, rows)
                if expected is not None and got != expected:
                    stats["failures"].append(
                        f"result: {label} ({polarity}, {mode}): SQL {got} != memory {expected}"
                    )
    return stats


def _in_memory(spec: Specification, rows: list[dict[str, Any]]) -> set[int] | None:
    try:
        return {row["id"] for row in rows if spec.is_satisfied_by(row)}
    except SpecificationError:
        return None  # the evaluator cannot read a path into some row's JSON value


def _check(db: Harness, table: sa.Table, run: Callable[[AsyncConnection], Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with db.engine.connect() as conn:
            before = await _checksum(conn, table)
            stats: dict[str, Any] = await run(conn)
            assert await _checksum(conn, table) == before, "a specification changed data"
            return stats

    stats = db.run(go)
    failures = stats.pop("failures")
    assert not failures, f"{len(failures)} failures, e.g.:\n" + "\n".join(failures[:25])
    return stats


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    async def setup(conn: AsyncConnection) -> None:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(sa.insert(MatrixThing), ROWS)

    with harness(request.param, tmp_path, setup) as h:
        yield h


@pytest.fixture(params=["spatialite", "postgresql"])
def geo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    async def setup(conn: AsyncConnection) -> None:
        await conn.run_sync(GeoBase.metadata.create_all)
        await conn.execute(sa.insert(MatrixPlace.__table__), PLACES)

    with harness(request.param, tmp_path, setup) as h:
        yield h


def test_spec_every_operator_on_every_column_kind_with_every_value_kind(db: Harness) -> None:
    stats = _check(
        db, MatrixThing.__table__, lambda conn: _run_matrix(conn, MatrixThing, ROWS, FIELDS)
    )
    # the matrix exercised both outcomes broadly (guards against a vacuous pass)
    assert stats["ran"] > 1000 and stats["refused"] > 1000, stats


def test_spec_every_operator_on_a_geometry_column(geo: Harness) -> None:
    places = [dict(p) for p in PLACES]
    stats = _check(
        geo,
        MatrixPlace.__table__,
        lambda conn: _run_matrix(conn, MatrixPlace, places, {"geometry": "geom"}),
    )
    assert stats["ran"] > 50 and stats["refused"] > 50, stats


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("meta", ">", True, "booleans"),  # issue 16: used to escape as sqlalchemy ArgumentError
        ("flag", ">", 1, "boolean field"),
        ("flag", "between", [0, 1], "boolean field"),
        ("n", "contains", "1", "number field"),
        ("created", "startswith", "2026", "date/time field"),
        ("name", "st_within", "POINT(0 0)", "text field"),
        ("flag", "fts", "word", "boolean field"),
        ("amount", "@>", {"a": 1}, "number field"),
    ],
)
def test_spec_operator_on_a_column_it_cannot_apply_to_is_a_library_error(
    field: str, op: str, value: Any, expected: str
) -> None:
    with pytest.raises(SpecificationError) as info:
        build_sqla_filter(MatrixThing, {"op": op, "attr": field, "val": value})
    assert expected in str(info.value), info.value


# -- CQRS_SOAK=1: random nested specifications over the same fields and value kinds -------------

_spellings = st.sampled_from(sorted({*(op.value for op in LEAF_OPERATORS), *ALIASES}))
_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(VALUES["str"]),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["k", "tags", "geometry", "distance", "x"]), inner),
    ),
    max_leaves=6,
)
_random_leaves = st.fixed_dictionaries(
    {"op": _spellings, "attr": st.sampled_from(list(FIELDS.values())), "val": _json}
)
_random_specs = st.recursive(
    _random_leaves,
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {"op": st.sampled_from(["and", "or"]), "conditions": st.lists(inner, min_size=1)}
        ),
        st.fixed_dictionaries({"op": st.just("not"), "condition": inner}),
    ),
    max_leaves=6,
)


def test_spec_random_specs_over_every_column_kind(db: Harness) -> None:
    before = db.run(lambda: _connected(db, lambda conn: _checksum(conn, MatrixThing.__table__)))
    outcomes = {"refused": 0, "ran": 0}

    @settings(
        max_examples=RANDOM_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not SOAK,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=_random_specs)
    def check(data: dict[str, Any]) -> None:
        try:
            clause = build_sqla_filter(MatrixThing, data)
        except SpecificationError:
            outcomes["refused"] += 1
            return
        stmt = sa.select(MatrixThing.id).where(clause)
        got = db.ids(stmt)  # any error here fails the test
        expected = _in_memory(Specification.from_dict(data), ROWS)
        assert expected is None or got == expected, data
        outcomes["ran"] += 1

    check()
    after = db.run(lambda: _connected(db, lambda conn: _checksum(conn, MatrixThing.__table__)))
    assert after == before
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, outcomes


async def _connected(db: Harness, use: Callable[[AsyncConnection], Any]) -> Any:
    async with db.engine.connect() as conn:
        return await use(conn)
