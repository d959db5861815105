"""The README's Alembic steps, run as a user runs them, on PostgreSQL with PostGIS.

In a temporary project: ``alembic init -t async migrations`` (Alembic's stock template, its
``script.py.mako`` untouched), ``docs/alembic-example/env.py`` as ``env.py`` with the one
documented edit, a models module using every mixin and the library's column types, then
autogenerate, upgrade, a second autogenerate that must find nothing, downgrade to base and
upgrade again; with and without the library's tables in the target metadata. Every command is
the installed ``alembic`` in a subprocess, against a database of its own.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from tests.acceptance.conftest import ROOT, cli_env
from tests.conftest import REQUIRE_POSTGRES, pg_dsn

ALEMBIC = Path(sys.executable).parent / "alembic"

# The bash block of the root README's "Use migrations (Alembic)" section, line for line.
README_STEPS = [
    "pip install alembic",
    "alembic init -t async migrations",
    "cp docs/alembic-example/env.py migrations/env.py",
    "# in migrations/env.py: from myapp.models import Base; APP_METADATA = Base.metadata",
    "export CQRS_DATABASE_URL=postgresql+asyncpg://user:pass@localhost:5432/app",
    'alembic revision --autogenerate -m "library and application tables"',
    "alembic upgrade head",
]
PLACEHOLDER = "APP_METADATA = MetaData()\n"
LIBRARY_LINE = "TARGET_METADATA = target_metadata(APP_METADATA)\n"

MODELS = """
import datetime as dt
import uuid
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_persistence_sqlalchemy.mixins import (
    ArchivableModelMixin,
    AuditableModelMixin,
    SpatialModelMixin,
    VersionMixin,
)
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime, UUIDType


class Base(DeclarativeBase):
    pass


class StoreModel(VersionMixin, AuditableModelMixin, ArchivableModelMixin, SpatialModelMixin, Base):
    __tablename__ = "stores"
    __geometry_type__ = "POINT"
    __table_args__ = (ArchivableModelMixin.live_unique("stores", "code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(20))


class OrderModel(VersionMixin, Base):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(UUIDType(), primary_key=True)
    lines: Mapped[Any] = mapped_column(JSONType())
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
"""

APP_TABLES = {"stores", "orders"}


def _bash_block(readme: Path, after: str) -> list[str]:
    """The lines of the first bash block after the line ``after`` of ``readme``."""
    text = readme.read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(after) :], re.DOTALL)
    assert block is not None
    return block.group(1).strip().splitlines()


def _sql(url: str, query: str) -> list[asyncpg.Record]:
    import asyncio

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_dsn(url))
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(go())


def _tables(url: str) -> set[str]:
    rows = _sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def _commands(path: Path) -> list[str]:
    """The operations of a generated migration's ``upgrade()`` and ``downgrade()``."""
    text = path.read_text()
    bodies = re.findall(r"# ### commands auto generated.*?\n(.*?)# ### end Alembic", text, re.S)
    assert len(bodies) == 2, text
    return [line.strip() for body in bodies for line in body.splitlines() if line.strip()]


class Project:
    """A user's project directory and the commands of the README, run in it."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.env = cli_env()
        self.url = url

    def alembic(self, *args: str) -> str:
        done = subprocess.run(
            [str(ALEMBIC), *args],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=self.path,
            env=self.env,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout + done.stderr

    def run_step(self, step: str) -> None:
        """One line of the README's block."""
        if step == "pip install alembic":
            assert ALEMBIC.exists()  # the dev group installs it
        elif step.startswith("alembic "):
            self.alembic(*shlex.split(step)[1:])
        elif step.startswith("cp "):
            _, source, target = step.split()
            shutil.copyfile(ROOT / source, self.path / target)
        elif step.startswith("# in migrations/env.py:"):
            # The edit the comment asks for, with this project's models module.
            self.edit_env(PLACEHOLDER, "from models import Base\nAPP_METADATA = Base.metadata\n")
        elif step.startswith("export CQRS_DATABASE_URL="):
            self.env["CQRS_DATABASE_URL"] = self.url
        else:
            raise AssertionError(f"README step the test does not know: {step!r}")

    def edit_env(self, old: str, new: str) -> None:
        env_py = self.path / "migrations" / "env.py"
        text = env_py.read_text()
        assert text.count(old) == 1, f"{old!r} not in env.py"
        env_py.write_text(text.replace(old, new))

    def revisions(self) -> list[Path]:
        return sorted(
            (self.path / "migrations" / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime
        )


@pytest.fixture
def postgis_url(pg_database: str) -> str:
    """The fresh database of ``pg_database`` with the PostGIS extension."""
    try:
        _sql(pg_database, "CREATE EXTENSION postgis")
    except asyncpg.PostgresError as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostGIS required (REQUIRE_POSTGRES=1) but unavailable: {exc}")
        pytest.skip(f"PostGIS unavailable: {exc}")
    return pg_database


def test_alembic_readme_block_is_what_this_test_runs() -> None:
    assert _bash_block(ROOT / "README.md", "### 1. Use migrations (Alembic)") == README_STEPS
    example = ROOT / "docs" / "alembic-example" / "README.md"
    assert _bash_block(example, "In your project") == README_STEPS


@pytest.mark.parametrize("library_tables", [True, False], ids=["with_library", "app_only"])
def test_alembic_user_path_on_postgis(
    tmp_path: Path, postgis_url: str, library_tables: bool
) -> None:
    project = Project(tmp_path, postgis_url)
    (tmp_path / "models.py").write_text(MODELS)
    stock_template = None
    for step in README_STEPS:
        if step.startswith("export "):
            stock_template = (tmp_path / "migrations" / "script.py.mako").read_text()
            if not library_tables:  # the variant the README and env.py document
                project.edit_env(LIBRARY_LINE, "TARGET_METADATA = APP_METADATA\n")
        project.run_step(step)

    # The stock template is what rendered the migration: nothing of ours in it.
    assert stock_template is not None and "cqrs_ddd" not in stock_template
    [first] = project.revisions()
    source = first.read_text()
    assert "from geoalchemy2 import Geometry" in source
    assert "import cqrs_ddd_persistence_sqlalchemy.types.datetime" in source
    assert source.count("'idx_stores_geom'") == 2  # created once, dropped once
    expected = APP_TABLES | ({"cqrs_events", "outbox_messages"} if library_tables else set())
    assert expected <= _tables(postgis_url)
    if not library_tables:
        assert not {t for t in _tables(postgis_url) if t.startswith("cqrs_")}
    indexes = _sql(postgis_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'stores'")
    assert {r["indexname"] for r in indexes} == {
        "idx_stores_geom",
        "ix_stores_archived",
        "stores_pkey",
        "uq_stores_code_live",
    }

    project.alembic("revision", "--autogenerate", "-m", "nothing changed")
    second = project.revisions()[-1]
    assert second != first and _commands(second) == ["pass", "pass"], second.read_text()

    project.alembic("downgrade", "base")
    assert _tables(postgis_url) == {"alembic_version", "spatial_ref_sys"}
    project.alembic("upgrade", "head")
    assert expected <= _tables(postgis_url)
    project.alembic("check")
