"""Geometry values: WKT text, GeoJSON mappings or shapely geometries.

A geometry value in a specification is kept in a JSON-friendly form: WKT/EWKT text stays text,
anything with ``__geo_interface__`` (a shapely geometry) becomes its GeoJSON mapping. Distance
operators take ``{"geometry": <geometry>, "distance": <number>}`` (or ``[geometry, distance]``).
shapely is only needed to *evaluate* geometry in memory (the ``geometry`` extra).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cqrs_ddd_core.errors import ConfigurationError, InvalidValueError

__all__ = ["normalize_distance", "normalize_geometry", "split_ewkt", "to_shape"]

_GEOJSON_TYPES = frozenset(
    {
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    }
)
_WKT_HEAD = re.compile(
    r"^\s*(SRID=\d+;)?\s*(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON|"
    r"GEOMETRYCOLLECTION)\b",
    re.IGNORECASE,
)
_SRID = re.compile(r"^\s*SRID=(\d+);(.*)$", re.IGNORECASE | re.DOTALL)


def normalize_geometry(value: Any, *, path: str | None = None) -> str | dict[str, Any]:
    """Return ``value`` as WKT text or a GeoJSON dict, or raise :class:`InvalidValueError`."""
    if isinstance(value, str):
        if not _WKT_HEAD.match(value):
            raise InvalidValueError(f"not a WKT geometry: {value[:60]!r}", path=path)
        return value.strip()
    geo = getattr(value, "__geo_interface__", None)
    if geo is not None:
        value = geo
    if isinstance(value, Mapping):
        if value.get("type") not in _GEOJSON_TYPES:
            raise InvalidValueError("not a GeoJSON geometry (bad 'type')", path=path)
        return {str(k): _plain(v) for k, v in value.items()}
    raise InvalidValueError(
        f"a geometry must be WKT text, a GeoJSON mapping or a shapely geometry, "
        f"got {type(value).__name__}",
        path=path,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def normalize_distance(value: Any, *, path: str | None = None) -> dict[str, Any]:
    """Return ``{"geometry": ..., "distance": float}`` for a distance operator's value."""
    if isinstance(value, Mapping) and "geometry" in value and "distance" in value:
        geometry, distance = value["geometry"], value["distance"]
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        geometry, distance = value
    else:
        raise InvalidValueError(
            'a distance operator needs {"geometry": ..., "distance": ...}', path=path
        )
    if isinstance(distance, bool) or not isinstance(distance, int | float):
        raise InvalidValueError("distance must be a number", path=path)
    if not math.isfinite(distance) or distance < 0:
        raise InvalidValueError("distance must be finite and non-negative", path=path)
    return {"geometry": normalize_geometry(geometry, path=path), "distance": float(distance)}


def split_ewkt(wkt: str) -> tuple[int | None, str]:
    """Split ``"SRID=4326;POINT(1 2)"`` into ``(4326, "POINT(1 2)")``."""
    match = _SRID.match(wkt)
    if match:
        return int(match.group(1)), match.group(2).strip()
    return None, wkt


def to_shape(value: Any) -> Any:
    """Return a shapely geometry for a stored or specified geometry value (needs shapely)."""
    try:
        import shapely
        import shapely.geometry
        import shapely.wkb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "evaluating geometry operators in memory needs shapely "
            "(install cqrs-ddd-specifications[geometry])"
        ) from exc
    if isinstance(value, shapely.Geometry):
        return value
    if isinstance(value, str):
        return shapely.from_wkt(split_ewkt(value)[1])
    if isinstance(value, bytes | bytearray | memoryview):
        return shapely.wkb.loads(bytes(value))
    geo = getattr(value, "__geo_interface__", None)
    if geo is not None:
        return shapely.geometry.shape(geo)
    if isinstance(value, Mapping):
        return shapely.geometry.shape(value)
    desc = getattr(value, "desc", None)  # geoalchemy2 WKBElement / WKTElement
    data = getattr(value, "data", None)
    if desc is not None and data is not None:
        return to_shape(data)
    raise InvalidValueError(f"cannot read a geometry from {type(value).__name__}")
