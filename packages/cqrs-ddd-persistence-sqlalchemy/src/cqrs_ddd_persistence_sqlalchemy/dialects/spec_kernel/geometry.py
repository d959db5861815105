"""Geometry values as SQL: WKT or GeoJSON bound as text, placed in the column's SRID.

The column is never transformed (that would defeat its spatial index); a value in another SRID
(EWKT ``SRID=3857;POINT(...)``) is transformed to the column's SRID instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cqrs_ddd_persistence_sqlalchemy.dialects.spec_kernel.target import Target
from cqrs_ddd_specifications.geometry import split_ewkt

__all__ = ["GeometryValue", "column_srid", "is_geographic", "is_geography", "split_value"]


@dataclass(frozen=True)
class GeometryValue:
    """A geometry value ready to bind: ``text`` is WKT or GeoJSON."""

    text: str
    is_geojson: bool
    srid: int | None


def split_value(value: Any) -> GeometryValue:
    """Split a normalised geometry value (WKT/EWKT text or a GeoJSON dict)."""
    if isinstance(value, str):
        srid, wkt = split_ewkt(value)
        return GeometryValue(wkt, False, srid)
    return GeometryValue(json.dumps(value, separators=(",", ":")), True, None)


def column_srid(target: Target) -> int | None:
    """The SRID declared by the column type (``Geometry(srid=4326)``), if any."""
    srid = getattr(target.type, "srid", None)
    return srid if isinstance(srid, int) and srid > 0 else None


def is_geography(target: Target) -> bool:
    """Whether the column is a PostGIS ``geography``."""
    return getattr(target.type, "name", None) == "geography"


def is_geographic(target: Target) -> bool:
    """Whether distances on the column should be metres on the spheroid."""
    flag = target.setting("geographic")
    if isinstance(flag, bool):
        return flag
    return is_geography(target) or column_srid(target) == 4326
