"""SQLite engine set-up: serialised writers, foreign keys, WAL and a busy timeout.

pysqlite's own transaction handling starts transactions lazily and never for reads; the
library needs a real ``BEGIN IMMEDIATE`` at the start of every transaction so that a unit of
work takes the write lock up front. With one writer at a time, commit order is insertion order,
which is what makes the event store's position a commit-safe cursor on SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import ConnectionLostError

__all__ = ["configure_sqlite_engine"]

_CONFIGURED = "_cqrs_ddd_sqlite_configured"


def configure_sqlite_engine(engine: AsyncEngine, *, busy_timeout_ms: int = 30_000) -> AsyncEngine:
    """Install the connection and transaction hooks on a ``sqlite+aiosqlite`` engine.

    Idempotent: a second call on the same engine does nothing.
    """
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or getattr(sync_engine, _CONFIGURED, False):
        return engine
    setattr(sync_engine, _CONFIGURED, True)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; "begin" below issues it explicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        database = sync_engine.url.database
        if database and database != ":memory:" and not database.startswith("file::memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    # SQLAlchemy's aiosqlite adapter makes commit and rollback no-ops on a closed connection:
    # such a connection would go back to the pool, and a commit on it would report success
    # for writes that are gone.
    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if _closed(dbapi_connection):
            raise DisconnectionError("the SQLite connection was closed")  # the pool replaces it

    @event.listens_for(sync_engine, "commit")
    def _on_commit(conn: Connection) -> None:
        if _closed(conn.connection.dbapi_connection):
            raise ConnectionLostError("the SQLite connection was closed in the transaction")

    return engine


def _closed(dbapi_connection: Any) -> bool:
    driver = getattr(dbapi_connection, "driver_connection", None)
    try:
        getattr(driver, "in_transaction", None)  # aiosqlite: ValueError once closed
    except ValueError:
        return True
    return False
