"""``SpatialModelMixin`` on PostGIS and SpatiaLite (``enable_spatialite``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, String
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION, create_engine
from cqrs_ddd_persistence_sqlalchemy.core import (
    ModelMapper,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.mixins import WKT_CONVERTER, SpatialModelMixin, VersionMixin
from cqrs_ddd_persistence_sqlalchemy.types import enable_spatialite

pytest.importorskip("geoalchemy2")


class GeoBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Store(AggregateRoot[str]):
    id: str
    name: str
    geom: str | None = None


class StoreModel(SpatialModelMixin, VersionMixin, GeoBase):
    __tablename__ = "stores"
    __geometry_type__ = "POINT"
    __geometry_srid__ = 4326

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


def _unavailable(required_by: str, reason: str) -> None:
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{reason} ({required_by}=1)")
    pytest.skip(reason)


@pytest.fixture
async def geo_engine(
    dialect_name: str, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    # CI installs both (REQUIRE_SPATIALITE=1, REQUIRE_POSTGRES=1): there a missing one fails.
    if dialect_name == "sqlite":
        from cqrs_ddd_persistence_sqlalchemy.types.spatialite import can_load_extensions

        if not can_load_extensions():
            _unavailable("REQUIRE_SPATIALITE", "this Python's sqlite3 cannot load extensions")
        eng = enable_spatialite(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'geo.db'}"))
        try:
            async with eng.connect():
                pass
        except ConfigurationError as exc:  # mod_spatialite is not installed
            await eng.dispose()
            _unavailable("REQUIRE_SPATIALITE", str(exc))
    else:
        from tests.conftest import has_postgis

        if not has_postgis():
            _unavailable("REQUIRE_POSTGRES", "PostGIS is not installed")
        eng = engine
    async with eng.begin() as conn:
        await conn.run_sync(GeoBase.metadata.create_all)
    yield eng
    if eng is not engine:
        await eng.dispose()


async def test_geometry_round_trip_and_spatial_search(geo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(geo_engine, expire_on_commit=False)
    mapper = ModelMapper(Store, StoreModel, converters={"geom": WKT_CONVERTER})
    repo = SQLAlchemyRepository(Store, StoreModel, mapper, bind=factory)
    await repo.add(Store(id="in", name="inside", geom="POINT(1 1)"))
    await repo.add(Store(id="out", name="outside", geom="POINT(5 5)"))
    await repo.add(Store(id="none", name="nowhere"))
    loaded = await repo.get("in")
    assert loaded is not None and loaded.geom == "POINT (1 1)"
    spec = {
        "op": "st_within",
        "attr": "geom",
        "val": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]},
    }
    async with SQLAlchemyUnitOfWork(factory) as uow:
        assert [s.id for s in await repo.search(spec, uow=uow)] == ["in"]
