"""``create_engine``: driver parameters in a PostgreSQL URL reach the connection, typed.

PostgreSQL only: SQLite's URL parameters are SQLAlchemy's own business (it converts them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from tests.conftest import PG_URL, require_postgres

from cqrs_ddd_persistence_sqlalchemy import create_engine


async def _session_state(url: str, **kwargs: Any) -> tuple[Any, ...]:
    engine = create_engine(url, **kwargs)
    try:
        async with engine.connect() as conn:
            shown = [
                (await conn.execute(text(f"SHOW {name}"))).scalar()
                for name in ("application_name", "statement_timeout", "lock_timeout")
            ]
            raw = await conn.get_raw_connection()
            return (*shown, raw.driver_connection)
    finally:
        await engine.dispose()


async def test_engine_url_asyncpg_arguments_and_server_settings() -> None:
    require_postgres()
    query = (
        "statement_cache_size=0&command_timeout=30&connect_timeout=5"
        "&application_name=url-app&options=-c%20statement_timeout%3D4s%20-c%20lock_timeout%3D3s"
    )
    url = PG_URL.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
    name, statement, lock, driver = await _session_state(f"{url}?{query}", lock_timeout_ms=2000)
    assert (name, statement, lock) == ("url-app", "4s", "2s")  # the keyword wins over the URL
    assert type(driver).__module__.startswith("asyncpg")


async def test_engine_url_psycopg_prepare_threshold_and_libpq_parameters() -> None:
    require_postgres()
    url = PG_URL.replace("postgresql+asyncpg://", "postgresql+psycopg://", 1)
    query = "prepare_threshold=0&application_name=url-app&options=-c%20statement_timeout%3D4s"
    name, statement, _, driver = await _session_state(f"{url}?{query}")
    assert (name, statement) == ("url-app", "4s")
    assert driver.prepare_threshold == 0  # an int, as psycopg needs, not the URL's "0"
