"""``SpatialModelMixin``: one geometry column (GeoAlchemy2) on PostGIS or SpatiaLite.

Requires the ``geometry`` extra (geoalchemy2, shapely). On SQLite, call
:func:`cqrs_ddd_persistence_sqlalchemy.types.enable_spatialite` on the engine first.

Example:
    >>> class StoreModel(SpatialModelMixin, Base):
    ...     __tablename__ = "stores"
    ...     __geometry_type__ = "POINT"
    ...     __geometry_srid__ = 4326
    ...     id: Mapped[str] = mapped_column(primary_key=True)

An entity keeps the geometry as WKT text (``geom: str | None``) with :func:`wkt_converter`
as the field's converter, or as a shapely geometry with :func:`shapely_converter`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.types.converter import FieldConverter

__all__ = [
    "SHAPELY_CONVERTER",
    "WKT_CONVERTER",
    "SpatialModelMixin",
    "shapely_converter",
    "wkt_converter",
]


def _geoalchemy() -> Any:
    try:
        import geoalchemy2
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "SpatialModelMixin needs the geometry extra: "
            "pip install 'cqrs-ddd-persistence-sqlalchemy[geometry]'"
        ) from exc
    return geoalchemy2


class SpatialModelMixin:
    """Adds ``geom``: ``Geometry(__geometry_type__, srid=__geometry_srid__)`` with a spatial
    index (GiST on PostGIS, an R*Tree on SpatiaLite)."""

    __geometry_type__: ClassVar[str] = "GEOMETRY"
    __geometry_srid__: ClassVar[int] = 4326
    __geometry_nullable__: ClassVar[bool] = True

    @declared_attr
    def geom(cls) -> Mapped[Any]:
        geoalchemy2 = _geoalchemy()
        return mapped_column(
            geoalchemy2.Geometry(
                geometry_type=cls.__geometry_type__,
                srid=cls.__geometry_srid__,
                spatial_index=True,
            ),
            nullable=cls.__geometry_nullable__,
        )


def wkt_converter(srid: int = 4326) -> FieldConverter:
    """Entity field as WKT text (``"POINT (1 2)"``) <-> geometry column with ``srid``."""

    def to_db(value: Any) -> Any:
        if value is None:
            return None
        return _geoalchemy().WKTElement(str(value), srid=srid)

    def from_db(value: Any) -> Any:
        if value is None:
            return None
        from geoalchemy2.shape import to_shape

        return to_shape(value).wkt

    return FieldConverter(to_db, from_db)


def shapely_converter(srid: int = 4326) -> FieldConverter:
    """Entity field as a shapely geometry <-> geometry column with ``srid``."""

    def to_db(value: Any) -> Any:
        if value is None:
            return None
        from geoalchemy2.shape import from_shape

        return from_shape(value, srid=srid)

    def from_db(value: Any) -> Any:
        if value is None:
            return None
        from geoalchemy2.shape import to_shape

        return to_shape(value)

    return FieldConverter(to_db, from_db)


#: Entity field as WKT text <-> geometry column (SRID 4326).
WKT_CONVERTER = wkt_converter(4326)
#: Entity field as a shapely geometry <-> geometry column (SRID 4326).
SHAPELY_CONVERTER = shapely_converter(4326)
