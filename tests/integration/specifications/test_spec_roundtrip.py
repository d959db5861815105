"""Seed README examples, geometry and keyset pagination against real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from geoalchemy2 import Geometry
from spec_dataset import ROWS, SpecOrder, load
from spec_db import Harness, harness
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_persistence_sqlalchemy.specifications import (
    apply_query_options,
    build_sqla_filter,
    encode_cursor,
)
from cqrs_ddd_specifications import Condition, QueryOptions, SpecificationBuilder, apply_options


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with harness(request.param, tmp_path, load) as h:
        yield h


def _expected(spec: Any) -> set[int]:
    return {row.id for row in ROWS if spec.is_satisfied_by(row)}


def test_spec_seed_status_total_example(db: Harness) -> None:
    builder = SpecificationBuilder()
    spec = builder.where("status", "eq", "active").and_where("total", "gt", 100).build()
    stmt = sa.select(SpecOrder.id).where(build_sqla_filter(SpecOrder, spec.to_dict()))
    got = db.ids(stmt)
    assert got == {r.id for r in ROWS if r.status == "active" and (r.total or 0) > 100}
    assert got  # the dataset has such rows


def test_spec_seed_metadata_column_name_and_fts(db: Harness) -> None:
    builder = SpecificationBuilder()
    spec = builder.where("metadata", "@>", {"tags": ["premium"]}).build()
    got = db.ids(sa.select(SpecOrder.id).where(build_sqla_filter(SpecOrder, spec.to_dict())))
    assert got == {r.id for r in ROWS if r.meta and "premium" in r.meta.get("tags", [])}
    assert got
    fts = builder.where("description", "fts", "python programming").build()
    got = db.ids(sa.select(SpecOrder.id).where(build_sqla_filter(SpecOrder, fts.to_dict())))
    assert got == _expected(fts)
    assert got


def test_spec_keyset_pagination_walks_every_row_once(db: Harness) -> None:
    options = QueryOptions(order_by=["-total", "status"], limit=7)
    seen: list[int] = []

    async def page(opts: QueryOptions) -> list[Any]:
        async with db.engine.connect() as conn:
            stmt = apply_query_options(sa.select(SpecOrder), SpecOrder, opts)
            return list((await conn.execute(stmt)).mappings())

    opts = options
    while True:
        rows = db.run(lambda o=opts: page(o))  # type: ignore[misc]
        seen.extend(r["id"] for r in rows)
        if len(rows) < options.limit:  # type: ignore[operator]
            break
        opts = options.with_cursor(encode_cursor(rows[-1], SpecOrder, options))
    assert sorted(seen) == sorted(r.id for r in ROWS)
    assert seen == [
        r.id for r in apply_options(ROWS, QueryOptions(order_by=["-total", "status", "id"]))
    ]


def test_spec_offset_select_distinct_group(db: Harness) -> None:
    opts = QueryOptions(order_by=["status"], select_fields=["status"], distinct=True)
    stmt = apply_query_options(sa.select(SpecOrder), SpecOrder, opts)

    async def run() -> list[Any]:
        async with db.engine.connect() as conn:
            return [r[0] for r in await conn.execute(stmt)]

    statuses = db.run(run)
    assert statuses == [*sorted({r.status for r in ROWS if r.status is not None}), None]


class GeoBase(DeclarativeBase):
    pass


class Place(GeoBase):
    __tablename__ = "spec_places"
    id: Mapped[int] = mapped_column(primary_key=True)
    location: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326))
    shape: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=3857), nullable=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", sa.JSON().with_variant(JSONB(), "postgresql")
    )


PLACES = [
    {"id": 1, "location": "SRID=4326;POINT(0.5 0.5)", "shape": "SRID=3857;POINT(1 1)"},
    {"id": 2, "location": "SRID=4326;POINT(2 2)", "shape": "SRID=3857;LINESTRING(0 0,4 4)"},
    {
        "id": 3,
        "location": "SRID=4326;POINT(0.001 0.0005)",
        "shape": "SRID=3857;POLYGON((0 0,3 0,3 3,0 3,0 0))",
    },
    {"id": 4, "location": "SRID=4326;POINT(50 50)", "shape": None},
]


@pytest.fixture(params=["spatialite", "postgresql"])
def geo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    async def setup(conn: Any) -> None:
        if request.param == "spatialite":
            # enable_spatialite initialises WGS84 (EPSG:4326) only; the shapes are in 3857.
            await conn.execute(sa.text("SELECT InsertEpsgSrid(3857)"))
        await conn.run_sync(GeoBase.metadata.create_all)
        await conn.execute(sa.insert(Place.__table__), [{**p, "metadata": None} for p in PLACES])

    with harness(request.param, tmp_path, setup) as h:
        yield h


def test_spec_seed_st_within(geo: Harness) -> None:
    import shapely

    polygon = "POLYGON((0 0,1 0,1 1,0 1,0 0))"
    for value in (
        polygon,
        shapely.from_wkt(polygon),
        shapely.geometry.mapping(shapely.from_wkt(polygon)),
    ):
        spec = SpecificationBuilder().where("location", "st_within", value).build()
        assert geo.ids(sa.select(Place.id).where(build_sqla_filter(Place, spec.to_dict()))) == {
            1,
            3,
        }


def test_spec_geometry_operators_agree_with_shapely(geo: Harness) -> None:
    rows = [{"id": p["id"], "shape": p["shape"]} for p in PLACES]
    values = ["POLYGON((0 0,2 0,2 2,0 2,0 0))", "POINT(1 1)", "LINESTRING(0 4,4 0)", "POINT(3 3)"]
    ops = [
        "intersects",
        "within",
        "contains_geom",
        "touches",
        "crosses",
        "overlaps",
        "disjoint",
        "geom_equals",
        "bbox_intersects",
    ]
    for op in ops:
        for value in values:
            spec = Condition("shape", op, value)
            expected = {r["id"] for r in rows if spec.is_satisfied_by(r)}
            got = geo.ids(sa.select(Place.id).where(build_sqla_filter(Place, spec)))
            assert got == expected, (op, value)
    for op in ("distance_lt", "dwithin"):
        for distance in (0, 1, 1.5, 3):
            spec = Condition("shape", op, {"geometry": "POINT(2 1)", "distance": distance})
            expected = {r["id"] for r in rows if spec.is_satisfied_by(r)}
            assert geo.ids(sa.select(Place.id).where(build_sqla_filter(Place, spec))) == expected


def test_spec_dwithin_metres_on_srid_4326(geo: Harness) -> None:
    # POINT(0.001 0.0005) is ~124 m from the origin on the spheroid
    near = Condition("location", "st_dwithin", {"geometry": "POINT(0 0)", "distance": 150})
    far = Condition("location", "st_dwithin", {"geometry": "POINT(0 0)", "distance": 100})
    assert geo.ids(sa.select(Place.id).where(build_sqla_filter(Place, near))) == {3}
    assert geo.ids(sa.select(Place.id).where(build_sqla_filter(Place, far))) == set()
