"""Alembic integration: put the library's tables into your own migrations.

The library's tables (events, outbox, sagas, projection checkpoints, snapshots, jobs, scheduled
commands) live on their own ``MetaData``. Add it to your ``env.py`` next to your models'::

    from cqrs_ddd_persistence_sqlalchemy.alembic import include_object, target_metadata

    context.configure(
        connection=connection,
        target_metadata=target_metadata(Base.metadata),
        include_object=include_object,
        compare_type=True,
    )

``alembic revision --autogenerate`` then creates and evolves the library tables together with
yours. :func:`include_object` keeps autogenerate from proposing to drop tables it did not
create: PostGIS' own tables, and the tables of projection collections that
``SQLAlchemyProjectionStore`` creates at run time (when you let it, ``allow_auto_ddl=True``).
A complete example lives in ``docs/alembic-example/`` of the repository.

This module does not import Alembic; it only provides the objects ``env.py`` hands to it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import MetaData

__all__ = [
    "POSTGIS_TABLES",
    "include_object",
    "library_metadata",
    "library_table_names",
    "make_include_object",
    "target_metadata",
]

#: Tables the PostGIS / tiger / topology extensions create in ``public``.
POSTGIS_TABLES: frozenset[str] = frozenset(
    {
        "spatial_ref_sys",
        "geometry_columns",
        "geography_columns",
        "raster_columns",
        "raster_overviews",
        "topology",
        "layer",
    }
)

IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


def _teach_reflection() -> None:
    """Let PostgreSQL reflection recognise ``xid8`` (the event log's ``txid`` column).

    Without it autogenerate warns "Did not recognize type 'xid8'" and cannot compare the type.
    """
    from sqlalchemy.dialects.postgresql import base as pg_base

    from cqrs_ddd_persistence_sqlalchemy.types.xid8 import Xid8

    pg_base.ischema_names.setdefault("xid8", Xid8)


_teach_reflection()


def library_metadata() -> MetaData:
    """The ``MetaData`` holding every library table (importing the package registers them)."""
    from cqrs_ddd_persistence_sqlalchemy import metadata

    return metadata


def library_table_names() -> frozenset[str]:
    """The names of the library's tables."""
    return frozenset(table.name for table in library_metadata().sorted_tables)


def target_metadata(*app_metadata: MetaData) -> list[MetaData]:
    """Your ``MetaData`` objects followed by the library's, for ``target_metadata=``.

    Example::

        context.configure(connection=conn, target_metadata=target_metadata(Base.metadata))
    """
    library = library_metadata()
    mine = [md for md in app_metadata if md is not library]
    taken = {name for md in mine for name in md.tables}
    clash = sorted(taken & set(library.tables))
    if clash:
        from cqrs_ddd_core.errors import ConfigurationError

        raise ConfigurationError(
            f"table name(s) {', '.join(clash)} are used by the library; rename your tables"
        )
    return [*mine, library]


def make_include_object(
    *,
    exclude_tables: Collection[str] = POSTGIS_TABLES,
    exclude_prefixes: Collection[str] = (),
    keep_unknown_reflected: bool = True,
) -> IncludeObject:
    """An ``include_object`` hook for ``context.configure``.

    Args:
        exclude_tables: table names autogenerate must ignore entirely.
        exclude_prefixes: table-name prefixes to ignore (e.g. your projection collections').
        keep_unknown_reflected: when True (default), a table that exists in the database but in
            none of the target ``MetaData`` is left alone instead of being dropped — projection
            collections created at run time are such tables.

    Example::

        include_object = make_include_object(exclude_prefixes=("proj_",))
    """
    excluded = frozenset(exclude_tables)
    prefixes = tuple(exclude_prefixes)

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table_name = (
            name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        )
        if table_name is not None and (table_name in excluded or table_name.startswith(prefixes)):
            return False
        if type_ == "table" and reflected and compare_to is None:
            return not keep_unknown_reflected
        return True

    return include


include_object: IncludeObject = make_include_object()
"""The default hook: ignores PostGIS tables and never drops tables unknown to the models."""
