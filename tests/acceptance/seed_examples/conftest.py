"""Fixtures of the seed README examples: one throw-away database URL per test and dialect."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def seed_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database (SQLite file, or a fresh PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url
