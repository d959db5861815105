"""SpatiaLite operators (SQLite with the SpatiaLite extension loaded, GeoAlchemy2 columns).

SpatiaLite predicates return 1, 0 or -1 (error); ``= 1`` keeps them two-valued. Distances on a
geographic column (SRID 4326) are metres on the ellipsoid (``ST_Distance(a, b, 1)``). Without
SpatiaLite loaded these functions do not exist: geometry columns on SQLite need it anyway.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import CompileContext, OperatorFn, Target
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.geometry import (
    column_srid,
    is_geographic,
    split_value,
)
from cqrs_ddd_specifications import Operator

__all__ = ["OPERATORS", "geometry_value"]


def geometry_value(target: Target, value: Any) -> ColumnElement[Any]:
    """The value as a SpatiaLite geometry in the column's SRID."""
    parsed = split_value(value)
    srid = column_srid(target)
    if parsed.is_geojson:
        geom = sa.func.GeomFromGeoJSON(sa.literal(parsed.text, sa.Text))
        return sa.func.SetSRID(geom, sa.literal(srid or 4326, sa.Integer))
    geom = sa.func.GeomFromText(
        sa.literal(parsed.text, sa.Text), sa.literal(parsed.srid or srid or 0, sa.Integer)
    )
    if parsed.srid and srid and parsed.srid != srid:
        geom = sa.func.Transform(geom, sa.literal(srid, sa.Integer))
    return geom


def _predicate(name: str) -> OperatorFn:
    function = getattr(sa.func, name)

    def compile_(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = (
            function(target.expr, geometry_value(target, value), type_=sa.Integer) == 1
        )
        return result

    return compile_


def _distance(target: Target, value: Any) -> ColumnElement[Any]:
    other = geometry_value(target, value["geometry"])
    if is_geographic(target):
        return sa.func.ST_Distance(target.expr, other, sa.literal(1, sa.Integer), type_=sa.Float)
    return sa.func.ST_Distance(target.expr, other, type_=sa.Float)


def distance_lt(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _distance(target, value) < sa.literal(value["distance"], sa.Float)


def dwithin(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return _distance(target, value) <= sa.literal(value["distance"], sa.Float)


#: The SpatiaLite operators.
OPERATORS: dict[Operator, OperatorFn] = {
    **{
        op: _predicate(name)
        for op, name in {
            Operator.INTERSECTS: "ST_Intersects",
            Operator.WITHIN: "ST_Within",
            Operator.CONTAINS_GEOM: "ST_Contains",
            Operator.TOUCHES: "ST_Touches",
            Operator.CROSSES: "ST_Crosses",
            Operator.OVERLAPS: "ST_Overlaps",
            Operator.DISJOINT: "ST_Disjoint",
            Operator.GEOM_EQUALS: "ST_Equals",
            Operator.BBOX_INTERSECTS: "MbrIntersects",
        }.items()
    },
    Operator.DISTANCE_LT: distance_lt,
    Operator.DWITHIN: dwithin,
}
