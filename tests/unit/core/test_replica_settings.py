"""Read-replica settings refused at construction, and the commit-position token (no server)."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

import pytest

from cqrs_ddd_core.errors import ConfigurationError, InvalidValueError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.replicas import attach_replicas, last_commit, read_after


async def test_sqlite_has_no_replicas(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="replicas"):
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", replicas=["sqlite+aiosqlite://"])
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        with pytest.raises(ConfigurationError, match="replicas"):
            attach_replicas(engine, [engine])
    finally:
        await engine.dispose()


def test_one_url_is_not_a_list_of_replicas() -> None:
    with pytest.raises(ConfigurationError, match="list"):
        create_engine("postgresql+asyncpg://h/db", replicas="postgresql+asyncpg://r/db")  # type: ignore[arg-type]


@pytest.mark.parametrize("setting", ["max_replica_lag", "read_your_writes_timeout"])
def test_negative_times_are_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match="seconds"):
        create_engine(
            "postgresql+asyncpg://h/db", replicas=["postgresql+asyncpg://r/db"], **{setting: -1}
        )


async def test_the_token_round_trips_and_only_grows() -> None:
    async def request() -> list[str | None]:
        seen = [last_commit()]
        read_after("16/B374D848")
        seen.append(last_commit())
        read_after("1/0")  # older: the context keeps the later position
        seen.append(last_commit())
        return seen

    seen = await asyncio.create_task(request(), context=contextvars.Context())
    assert seen == [None, "16/B374D848", "16/B374D848"]
    assert last_commit() is None  # another context's position stays there


@pytest.mark.parametrize("token", ["zz/1", "1/2/3", "' OR 1=1 --", "123456789/0", "1" * 10_000, 5])
def test_a_hostile_token_is_refused_and_changes_nothing(token: object) -> None:
    def attempt() -> str | None:
        with pytest.raises(InvalidValueError):
            read_after(token)  # type: ignore[arg-type]
        return last_commit()

    assert contextvars.Context().run(attempt) is None
