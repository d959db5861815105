"""``cqrs-ddd-sqla schema sql|create|check``: the library tables as DDL, created, or compared."""

from __future__ import annotations

import warnings
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable
from sqlalchemy import Index, MetaData, UniqueConstraint
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import (
    DatabaseUrl,
    Pooler,
    Schema,
    console,
    describe_url,
    engine_scope,
    normalize_url,
    run,
)
from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED, support_for_url

__all__ = ["app", "create_ddl", "schema_differences"]

app = typer.Typer(
    name="schema",
    help="The library's tables: print the DDL, create them, compare a database with them.",
    no_args_is_help=True,
)


class DialectName(StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


def library_metadata() -> MetaData:
    """The library ``MetaData`` with every table registered (importing the package does it)."""
    from cqrs_ddd_persistence_sqlalchemy import metadata

    return metadata


def _dialect(name: str) -> Dialect:
    return SUPPORTED[name].sqlalchemy_dialect()


def create_ddl(metadata: MetaData, dialect_name: str) -> str:
    """``CREATE TABLE`` / ``CREATE INDEX`` statements of ``metadata`` for one dialect."""
    dialect = _dialect(dialect_name)
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
    return "\n\n".join(statements) + "\n"


def schema_differences(connection: Any, metadata: MetaData) -> list[tuple[str, str]]:
    """``(object, problem)`` pairs where the database differs from ``metadata``.

    Compares tables, columns (presence and nullability), named indexes and unique constraints.
    Column types are not compared: reflected types differ in spelling across dialects; use
    Alembic's ``compare_metadata`` (see :mod:`cqrs_ddd_persistence_sqlalchemy.alembic`) for that.
    """
    with warnings.catch_warnings():
        # Types the reflection does not know (PostgreSQL xid8) are not compared anyway.
        warnings.filterwarnings("ignore", "Did not recognize type", sa_exc.SAWarning)
        return _differences(sa_inspect(connection), metadata)


def _differences(inspector: Any, metadata: MetaData) -> list[tuple[str, str]]:
    existing = set(inspector.get_table_names())
    problems: list[tuple[str, str]] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            problems.append((table.name, "table missing"))
            continue
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        for column in table.columns:
            found = columns.get(column.name)
            if found is None:
                problems.append((f"{table.name}.{column.name}", "column missing"))
            elif not column.primary_key and bool(found["nullable"]) != bool(column.nullable):
                want = "NULL" if column.nullable else "NOT NULL"
                problems.append((f"{table.name}.{column.name}", f"should be {want}"))
        for name in sorted(set(columns) - {c.name for c in table.columns}):
            problems.append((f"{table.name}.{name}", "column not in the library model"))
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        uniques = {u["name"] for u in inspector.get_unique_constraints(table.name)}
        for index in table.indexes:
            if isinstance(index, Index) and index.name and index.name not in indexes:
                problems.append((str(index.name), f"index missing on {table.name}"))
        for cons in table.constraints:
            if (
                isinstance(cons, UniqueConstraint)
                and isinstance(cons.name, str)
                and cons.name not in uniques
                and cons.name not in indexes
            ):
                problems.append((cons.name, f"unique constraint missing on {table.name}"))
    return problems


@app.command("sql")
def sql(
    database_url: DatabaseUrl = None,
    dialect: Annotated[
        DialectName | None,
        typer.Option(help="Dialect to print for (default: from --database-url, else postgresql)."),
    ] = None,
) -> None:
    """Print the DDL of every library table (nothing is executed)."""

    async def body() -> None:
        name = dialect.value if dialect is not None else None
        if name is None:
            name = (
                support_for_url(normalize_url(database_url)).name if database_url else "postgresql"
            )
        # Plain echo: rich would expand the DDL's tabs and could wrap long lines.
        typer.echo(create_ddl(library_metadata(), name))

    run(body)


@app.command("create")
def create(database_url: DatabaseUrl = None, schema: Schema = None, pooler: Pooler = None) -> None:
    """Create the library tables that do not exist yet (existing ones are left alone).

    For production, prefer migrations: see docs/alembic-example.
    """

    async def body() -> None:
        metadata = library_metadata()
        async with engine_scope(database_url, schema, pooler) as engine:
            async with engine.begin() as conn:
                before = set(await conn.run_sync(lambda c: sa_inspect(c).get_table_names()))
                await conn.run_sync(metadata.create_all)
            created = [t.name for t in metadata.sorted_tables if t.name not in before]
            where = describe_url(engine)
        if created:
            console.print(f"created {len(created)} table(s) in {where}: {', '.join(created)}")
        else:
            console.print(f"all {len(metadata.tables)} library tables already exist in {where}")

    run(body)


@app.command("check")
def check(database_url: DatabaseUrl = None, schema: Schema = None, pooler: Pooler = None) -> None:
    """Compare the database with the library's models; exit 1 when they differ."""

    async def body() -> int:
        metadata = library_metadata()
        async with engine_scope(database_url, schema, pooler) as engine:
            async with engine.connect() as conn:
                problems = await conn.run_sync(schema_differences, metadata)
            where = describe_url(engine)
        if not problems:
            console.print(f"[green]ok[/]: {len(metadata.tables)} library tables match in {where}")
            return 0
        table = RichTable(title=f"{len(problems)} difference(s)", caption=where)
        table.add_column("object")
        table.add_column("problem")
        for obj, problem in problems:
            table.add_row(obj, problem)
        console.print(table)
        console.print("fix: `cqrs-ddd-sqla schema create` (new tables) or a migration")
        return 1

    code = run(body)
    if code:
        raise typer.Exit(code)
