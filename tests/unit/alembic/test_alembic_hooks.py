"""``cqrs_ddd_persistence_sqlalchemy.alembic``: the hooks ``env.py`` hands to Alembic.

The migration code Alembic renders with :func:`render_item` is executed here with nothing but
``sa``, a recording ``op`` and the imports the hook added: the tables it rebuilds must compile
to the same DDL as the models, on PostgreSQL and SQLite. No database needed.
"""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from cqrs_ddd_persistence_sqlalchemy import metadata
from cqrs_ddd_persistence_sqlalchemy.alembic import (
    configure_kwargs,
    include_object,
    make_include_object,
    render_item,
)
from cqrs_ddd_persistence_sqlalchemy.mixins import (
    ArchivableModelMixin,
    AuditableModelMixin,
    SpatialModelMixin,
    VersionMixin,
)
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime, UUIDType


class _Base(sa.orm.DeclarativeBase):
    pass


class _Store(VersionMixin, AuditableModelMixin, ArchivableModelMixin, SpatialModelMixin, _Base):
    __tablename__ = "stores"
    __geometry_type__ = "POINT"

    id: sa.orm.Mapped[str] = sa.orm.mapped_column(sa.String(36), primary_key=True)


_variants = sa.Table(
    "variants",
    sa.MetaData(),
    sa.Column("id", UUIDType(), primary_key=True),
    sa.Column("doc", JSONType().with_variant(sa.Text(), "mysql")),
    sa.Column("at", sa.ARRAY(UTCDateTime())),
)


class _RecordingOp:
    """Stands for ``alembic.op``: keeps the tables the migration would create."""

    def __init__(self) -> None:
        self.tables: list[sa.Table] = []

    def create_table(self, name: str, *items: Any, **kw: Any) -> None:
        self.tables.append(sa.Table(name, sa.MetaData(), *items, **kw))

    def f(self, name: str) -> str:
        return name


def _rendered(table: sa.Table, dialect: str = "postgresql") -> tuple[str, set[str]]:
    contexts: list[Any] = []

    def hook(type_: str, obj: Any, autogen_context: Any) -> Any:
        contexts.append(autogen_context)
        return render_item(type_, obj, autogen_context)

    code = render_python_code(
        ops.UpgradeOps([ops.CreateTableOp.from_table(table)]),
        render_item=hook,
        migration_context=MigrationContext.configure(dialect_name=dialect),
    )
    return code, set(contexts[0].imports) if contexts else set()


def _replay(table: sa.Table, dialect: str = "postgresql") -> sa.Table:
    """Run the ``upgrade()`` rendered for ``dialect`` with only its own imports in scope."""
    code, imports = _rendered(table, dialect)
    recorder = _RecordingOp()
    namespace: dict[str, Any] = {"sa": sa, "op": recorder}
    exec("\n".join(sorted(imports)), namespace)
    exec("def upgrade():\n    " + code, namespace)
    namespace["upgrade"]()
    [rebuilt] = recorder.tables
    return rebuilt


def _ddl(table: sa.Table, dialect: Any) -> list[str]:
    """The ``CREATE TABLE`` lines, sorted: Alembic renders constraints in its own order.

    ``DEFAULT (0)`` and ``DEFAULT 0`` are the same default: SQLAlchemy 2.0's SQLite compiler
    parenthesises an expression default (the model's ``false()``) but not the text a migration
    renders it as; 2.1 parenthesises both."""
    lines = str(CreateTable(table).compile(dialect=dialect)).splitlines()
    return sorted(
        re.sub(r"DEFAULT \(([^()]*)\)", r"DEFAULT \1", line.strip().rstrip(","))
        for line in lines
        if line.strip()
    )


LIBRARY_TABLES = sorted(metadata.tables)


DIALECTS: dict[str, Any] = {
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(),
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("name", LIBRARY_TABLES)
def test_alembic_rendered_library_table_runs_and_equals_the_model(name: str, dialect: str) -> None:
    table = metadata.tables[name]
    rebuilt = _replay(table, dialect)
    assert _ddl(rebuilt, DIALECTS[dialect]) == _ddl(table, DIALECTS[dialect])


def test_alembic_rendered_event_log_is_portable() -> None:
    """Generated on PostgreSQL, applied on SQLite: the ``txid`` default compiles for SQLite."""
    events = metadata.tables["cqrs_events"]
    rebuilt = _replay(events, "postgresql")
    assert _ddl(rebuilt, DIALECTS["sqlite"]) == _ddl(events, DIALECTS["sqlite"])


def test_alembic_render_imports_library_types_and_server_defaults() -> None:
    code, imports = _rendered(metadata.tables["cqrs_events"])
    assert imports == {
        "import cqrs_ddd_persistence_sqlalchemy.types.datetime",
        "import cqrs_ddd_persistence_sqlalchemy.types.json",
        "import cqrs_ddd_persistence_sqlalchemy.types.xid8",
    }
    # the function, compiled per dialect when the migration runs, not PostgreSQL's SQL text
    assert "server_default=cqrs_ddd_persistence_sqlalchemy.types.xid8.current_xact_id()" in code
    assert "pg_current_xact_id" not in code


def test_alembic_render_keeps_variants_and_nested_types() -> None:
    rebuilt = _replay(_variants)  # ARRAY: PostgreSQL only
    assert _ddl(rebuilt, DIALECTS["postgresql"]) == _ddl(_variants, DIALECTS["postgresql"])
    assert isinstance(rebuilt.c.doc.type, JSONType)


def test_alembic_render_mixin_model_with_geometry() -> None:
    table = cast(sa.Table, _Store.__table__)
    code, imports = _rendered(table)
    assert "from geoalchemy2 import Geometry" in imports
    assert "import cqrs_ddd_persistence_sqlalchemy.types.clock" in imports  # utcnow()
    assert "server_default=cqrs_ddd_persistence_sqlalchemy.types.clock.utcnow()" in code
    rebuilt = _replay(table)
    assert _ddl(rebuilt, DIALECTS["postgresql"]) == _ddl(table, DIALECTS["postgresql"])


def test_alembic_render_leaves_other_objects_to_alembic() -> None:
    context = type("Ctx", (), {"imports": set()})()
    assert render_item("type", sa.String(20), context) is False
    assert render_item("server_default", sa.DefaultClause(sa.text("0")), context) is False
    assert render_item("column", sa.Column("x", UTCDateTime()), context) is False
    assert context.imports == set()


def test_alembic_configure_kwargs_combines_geoalchemy_and_library_hooks() -> None:
    import geoalchemy2.alembic_helpers as geo

    kwargs = configure_kwargs()
    assert kwargs["render_item"] is render_item
    assert kwargs["compare_type"] is True
    assert kwargs["process_revision_directives"] is geo.writer
    hook = kwargs["include_object"]
    assert hook(None, "spatial_ref_sys", "table", True, None) is False  # both say so
    assert hook(None, "spatialite_history", "table", False, None) is False  # GeoAlchemy2's
    assert hook(None, "order_summaries", "table", True, None) is False  # library: never drop
    assert hook(None, "stores", "table", False, None) is True
    assert include_object(None, "spatialite_history", "table", False, None) is True

    mine = configure_kwargs(include_object=make_include_object(exclude_prefixes=("proj_",)))
    assert mine["include_object"](None, "proj_orders", "table", False, None) is False
    assert mine["include_object"](None, "stores", "table", False, None) is True
