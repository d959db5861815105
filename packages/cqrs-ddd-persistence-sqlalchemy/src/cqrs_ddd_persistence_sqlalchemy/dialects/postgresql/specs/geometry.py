"""PostGIS operators (``geometry`` and ``geography`` columns, e.g. GeoAlchemy2 types).

The value is built in the column's own SRID; the column itself is never wrapped in
``ST_Transform``. Distances: on a ``geography`` column, metres; on a ``geometry`` column with
SRID 4326 (or ``Column(info={"geographic": True})``), metres on the spheroid through
``geography(column)`` - create the matching expression index
``CREATE INDEX ... USING gist ((column::geography))``; otherwise the units of the column's CRS.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel import CompileContext, OperatorFn, Target
from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.geometry import (
    column_srid,
    is_geographic,
    is_geography,
    split_value,
)
from cqrs_ddd_specifications import Operator

__all__ = ["OPERATORS", "geometry_value"]


def geometry_value(target: Target, value: Any) -> ColumnElement[Any]:
    """The value as a PostGIS geometry (or geography) in the column's SRID."""
    parsed = split_value(value)
    srid = column_srid(target)
    geom: ColumnElement[Any]
    if parsed.is_geojson:
        geom = sa.func.ST_GeomFromGeoJSON(sa.literal(parsed.text, sa.Text))
        geom = sa.func.ST_SetSRID(geom, sa.literal(srid or 4326, sa.Integer))
    else:
        geom = sa.func.ST_GeomFromText(
            sa.literal(parsed.text, sa.Text), sa.literal(parsed.srid or srid or 0, sa.Integer)
        )
        if parsed.srid and srid and parsed.srid != srid:
            geom = sa.func.ST_Transform(geom, sa.literal(srid, sa.Integer))
    if is_geography(target):
        geom = sa.func.geography(geom)
    return geom


def _predicate(name: str) -> OperatorFn:
    function = getattr(sa.func, name)

    def compile_(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = function(
            target.expr, geometry_value(target, value), type_=sa.Boolean
        )
        return result

    compile_.__name__ = name
    return compile_


def bbox_intersects(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    return target.expr.op("&&", return_type=sa.Boolean)(geometry_value(target, value))


def _metric(target: Target, value: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    column: ColumnElement[Any] = target.expr
    other = geometry_value(target, value["geometry"])
    if is_geographic(target) and not is_geography(target):
        column, other = sa.func.geography(column), sa.func.geography(other)
    return column, other


def distance_lt(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    column, other = _metric(target, value)
    return sa.func.ST_Distance(column, other, type_=sa.Float) < sa.literal(
        value["distance"], sa.Float
    )


def dwithin(ctx: CompileContext, target: Target, value: Any) -> ColumnElement[bool]:
    column, other = _metric(target, value)
    result: ColumnElement[bool] = sa.func.ST_DWithin(
        column, other, sa.literal(value["distance"], sa.Float), type_=sa.Boolean
    )
    return result


#: The PostGIS operators.
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
        }.items()
    },
    Operator.BBOX_INTERSECTS: bbox_intersects,
    Operator.DISTANCE_LT: distance_lt,
    Operator.DWITHIN: dwithin,
}
