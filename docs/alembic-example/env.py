"""Alembic environment: your models' MetaData plus the library's tables, on an async engine.

Copy this file over the ``env.py`` of ``alembic init -t async migrations`` and set
``APP_METADATA`` to your models' ``Base.metadata``. The database URL comes from
``CQRS_DATABASE_URL``, else from ``sqlalchemy.url`` in ``alembic.ini``.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.alembic import configure_kwargs, target_metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

# Your application's models: ``from myapp.models import Base`` and ``APP_METADATA = Base.metadata``.
APP_METADATA = MetaData()

# Your tables and the library's; ``TARGET_METADATA = APP_METADATA`` leaves the library's out.
TARGET_METADATA = target_metadata(APP_METADATA)


def database_url() -> str:
    return os.environ.get("CQRS_DATABASE_URL") or config.get_main_option("sqlalchemy.url") or ""


def run_migrations_offline() -> None:
    """``alembic upgrade head --sql``: print the SQL instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=TARGET_METADATA,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_kwargs(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=TARGET_METADATA, **configure_kwargs())
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
