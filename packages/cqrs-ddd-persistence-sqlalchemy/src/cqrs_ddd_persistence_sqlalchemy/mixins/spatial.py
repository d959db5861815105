"""``SpatialModelMixin``: one geometry column (GeoAlchemy2) on PostGIS or SpatiaLite.

Requires the ``geometry`` extra (geoalchemy2, shapely). On SQLite, call
:func:`cqrs_ddd_persistence_sqlalchemy.types.enable_spatialite` on the engine first.

Example:
    >>> class StoreModel(SpatialModelMixin, Base):
    ...     __tablename__ = "stores"
    ...     __geometry_type__ = "POINT"
    ...     __geometry_srid__ = 4326
    ...     id: Mapped[str] = mapped_column(primary_key=True)

An entity keeps the geometry as WKT text (``geom: str | None``) with :data:`WKT_CONVERTER`
as the field's converter, or as a shapely geometry with :data:`SHAPELY_CONVERTER`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.core.mapper import FieldConverter

__all__ = ["SHAPELY_CONVERTER", "WKT_CONVERTER", "SpatialModelMixin"]


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


def _wkt_to_db(value: Any) -> Any:
    if value is None:
        return None
    geoalchemy2 = _geoalchemy()
    text, srid = (value, -1) if isinstance(value, str) else value
    return geoalchemy2.WKTElement(text, srid=srid) if srid != -1 else geoalchemy2.WKTElement(text)


def _wkt_from_db(value: Any) -> Any:
    if value is None:
        return None
    from geoalchemy2.shape import to_shape

    return to_shape(value).wkt


def _shape_to_db(value: Any) -> Any:
    if value is None:
        return None
    from geoalchemy2.shape import from_shape

    return from_shape(value)


def _shape_from_db(value: Any) -> Any:
    if value is None:
        return None
    from geoalchemy2.shape import to_shape

    return to_shape(value)


#: Entity field as WKT text <-> geometry column.
WKT_CONVERTER = FieldConverter(_wkt_to_db, _wkt_from_db)
#: Entity field as a shapely geometry <-> geometry column.
SHAPELY_CONVERTER = FieldConverter(_shape_to_db, _shape_from_db)
