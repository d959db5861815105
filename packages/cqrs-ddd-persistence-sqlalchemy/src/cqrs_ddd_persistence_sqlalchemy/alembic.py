"""Alembic integration: put the library's tables into your own migrations.

The library's tables (events, outbox, sagas, projection checkpoints, snapshots, jobs, scheduled
commands) live on their own ``MetaData``. Add it to your ``env.py`` next to your models', with
the hooks of :func:`configure_kwargs`::

    from cqrs_ddd_persistence_sqlalchemy.alembic import configure_kwargs, target_metadata

    context.configure(
        connection=connection,
        target_metadata=target_metadata(Base.metadata),
        **configure_kwargs(),
    )

``alembic revision --autogenerate`` then creates and evolves the library tables together with
yours, and writes migrations that apply with Alembic's stock ``script.py.mako``:

- :func:`render_item` imports the modules of the library's column types (``UTCDateTime``,
  ``JSONType``...) in the generated file, and renders the library's server defaults
  (``utcnow()``, ``current_xact_id()``) as themselves instead of one dialect's SQL text;
- with GeoAlchemy2 installed (``geometry`` extra: ``SpatialModelMixin``), its Alembic helpers
  render ``Geometry`` with its import and create each spatial index once;
- :func:`include_object` keeps autogenerate from proposing to drop tables it did not create:
  PostGIS' own tables, and the tables of projection collections that
  ``SQLAlchemyProjectionStore`` creates at run time (when you let it, ``allow_auto_ddl=True``).

A complete ``env.py`` lives in ``docs/alembic-example/`` of the repository.

This module does not import Alembic; it only provides the objects ``env.py`` hands to it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import Any, Literal

from sqlalchemy import MetaData
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "POSTGIS_TABLES",
    "configure_kwargs",
    "include_object",
    "library_metadata",
    "library_table_names",
    "make_include_object",
    "render_item",
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


_DEFAULT_INCLUDE_OBJECT = make_include_object()
include_object: IncludeObject = _DEFAULT_INCLUDE_OBJECT
"""The default hook: ignores PostGIS tables and never drops tables unknown to the models."""


_PACKAGE = __name__.rpartition(".")[0]


def _is_library(module: str) -> bool:
    return module == _PACKAGE or module.startswith(_PACKAGE + ".")


def _geoalchemy_helpers() -> Any:
    """``geoalchemy2.alembic_helpers`` when the ``geometry`` extra is installed, else None.

    Importing it registers GeoAlchemy2's Alembic operations (``create_geospatial_table``,
    ``create_geospatial_index``...) that the migrations it writes call.
    """
    try:
        return importlib.import_module("geoalchemy2.alembic_helpers")
    except ImportError:
        return None


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Alembic's ``render_item`` hook for the library's and GeoAlchemy2's objects.

    Alembic writes a column type defined outside SQLAlchemy as ``its.module.Name(...)`` without
    importing ``its.module``; this hook adds the import to the migration (Alembic keeps its own
    rendering, variants included). A server default that is one of the library's SQL functions
    (``utcnow()``, ``current_xact_id()``) is written as that function, which compiles for the
    dialect the migration runs on, instead of the SQL text of the dialect that generated it.
    ``Geometry``/``Geography``/``Raster`` go to GeoAlchemy2's own hook. Anything else: False
    (Alembic's default rendering).

    Example::

        context.configure(connection=connection, target_metadata=..., render_item=render_item)
    """
    if type_ == "type":
        module = type(obj).__module__
        if _is_library(module):
            autogen_context.imports.add(f"import {module}")
        elif module.startswith("geoalchemy2."):
            helpers = _geoalchemy_helpers()
            if helpers is not None:
                rendered: str | Literal[False] = helpers.render_item(type_, obj, autogen_context)
                return rendered
        return False
    if type_ == "server_default":
        function = getattr(obj, "arg", None)
        module = type(function).__module__
        # Only argument-less functions: the call is rebuilt from the class name alone.
        if (
            isinstance(function, FunctionElement)
            and _is_library(module)
            and not function.clauses.clauses
        ):
            autogen_context.imports.add(f"import {module}")
            return f"{module}.{type(function).__name__}()"
    return False


def configure_kwargs(*, include_object: IncludeObject | None = None) -> dict[str, Any]:
    """The hooks ``context.configure`` needs for the library's tables and column types.

    Returns ``include_object`` (the library's :data:`include_object`, or yours, combined with
    GeoAlchemy2's when it is installed), :func:`render_item`, ``compare_type=True`` and, with
    GeoAlchemy2, its ``process_revision_directives`` (creates a spatial index once, with the
    operations GeoAlchemy2 registers). That one is an Alembic ``Rewriter``: to add your own
    rewriter, pass ``geoalchemy2.alembic_helpers.writer.chain(yours)`` instead.

    Args:
        include_object: your hook instead of the library's default one (for instance
            ``make_include_object(exclude_prefixes=("proj_",))``).

    Example::

        context.configure(
            connection=connection,
            target_metadata=target_metadata(Base.metadata),
            **configure_kwargs(),
        )
    """
    library_hook = include_object or _DEFAULT_INCLUDE_OBJECT
    kwargs: dict[str, Any] = {
        "include_object": library_hook,
        "render_item": render_item,
        "compare_type": True,
    }
    helpers = _geoalchemy_helpers()
    if helpers is not None:
        geo_hook: IncludeObject = helpers.include_object

        def include_both(
            obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
        ) -> bool:
            return library_hook(obj, name, type_, reflected, compare_to) and geo_hook(
                obj, name, type_, reflected, compare_to
            )

        kwargs["include_object"] = include_both
        kwargs["process_revision_directives"] = helpers.writer
    return kwargs
