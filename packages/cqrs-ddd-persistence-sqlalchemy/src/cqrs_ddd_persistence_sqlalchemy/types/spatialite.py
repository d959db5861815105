"""SpatiaLite helpers: load ``mod_spatialite`` once per connection, initialise the spatial
metadata once per database.

Example:
    >>> engine = create_engine("sqlite+aiosqlite:///./geo.db")
    >>> enable_spatialite(engine)          # before the first connection is made
    >>> async with engine.begin() as conn:
    ...     await conn.run_sync(Base.metadata.create_all)   # geometry columns now work
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from cqrs_ddd_core.errors import ConfigurationError

__all__ = [
    "can_load_extensions",
    "enable_spatialite",
    "init_spatial_metadata",
    "load_spatialite",
]

_ENABLED = "_cqrs_ddd_spatialite"
_LOADED = "cqrs_ddd_spatialite_loaded"


def _library(path: str | None) -> str:
    return path or os.environ.get("SPATIALITE_LIBRARY_PATH") or "mod_spatialite"


def load_spatialite(dbapi_connection: Any, path: str | None = None) -> None:
    """Load the SpatiaLite extension into one DBAPI connection (sqlite3 or aiosqlite adapter).

    The library is ``path``, else ``$SPATIALITE_LIBRARY_PATH``, else ``mod_spatialite`` found
    on the loader path.
    """
    library = _library(path)
    driver = getattr(dbapi_connection, "driver_connection", None)
    try:
        if (
            driver is not None
            and hasattr(driver, "enable_load_extension")
            and hasattr(driver, "_tx")
        ):  # aiosqlite behind SQLAlchemy's async adapter
            await_only(driver.enable_load_extension(True))
            await_only(driver.load_extension(library))
            await_only(driver.enable_load_extension(False))
        else:
            dbapi_connection.enable_load_extension(True)
            dbapi_connection.load_extension(library)
            dbapi_connection.enable_load_extension(False)
    except AttributeError as exc:  # sqlite3 built without SQLITE_ENABLE_LOAD_EXTENSION
        raise ConfigurationError(
            "cannot load SpatiaLite: this Python's sqlite3 module cannot load extensions "
            "(build Python with --enable-loadable-sqlite-extensions)"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(f"cannot load SpatiaLite ({library!r}): {exc}") from exc


def can_load_extensions() -> bool:
    """Whether this Python's ``sqlite3`` can load extensions such as SpatiaLite."""
    import sqlite3

    return hasattr(sqlite3.Connection, "enable_load_extension")


def init_spatial_metadata(dbapi_connection: Any) -> None:
    """Create SpatiaLite's metadata tables unless the database already has them."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT CheckSpatialMetaData()")
        row = cursor.fetchone()
        if not row or int(row[0]) < 1:
            # WGS84 only: the full EPSG table takes seconds to load and most apps need 4326
            cursor.execute("SELECT InitSpatialMetaData(1, 'WGS84')")
    finally:
        cursor.close()


def enable_spatialite(engine: AsyncEngine, path: str | None = None) -> AsyncEngine:
    """Install a connect hook: load SpatiaLite, initialise the metadata once per database.

    Idempotent per engine. Call it before the engine's first connection.
    """
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite":
        raise ConfigurationError("enable_spatialite needs a SQLite engine")
    if getattr(sync_engine, _ENABLED, False):
        return engine
    setattr(sync_engine, _ENABLED, True)
    initialised: set[str] = set()

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        load_spatialite(dbapi_connection, path)
        record.info[_LOADED] = True
        database = str(sync_engine.url.database or ":memory:")
        if database not in initialised or database == ":memory:":
            init_spatial_metadata(dbapi_connection)
            initialised.add(database)

    return engine
