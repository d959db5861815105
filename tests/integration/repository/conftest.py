"""Make this directory's helper modules importable (the suite runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import pytest  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402


@pytest.fixture
async def repo_engine(engine: AsyncEngine) -> AsyncEngine:
    """The test database with the repository test models' tables."""
    from repo_models import Base

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine
