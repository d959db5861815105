"""SQLAlchemyOutboxStorage passes the core outbox contract on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.testing import OutboxContract, OutboxHarness
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyOutboxStorage, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff


class TestSQLAlchemyOutbox(OutboxContract):
    @pytest.fixture
    def harness(
        self,
        library_tables: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> OutboxHarness:
        backoff = Backoff(base=0.4, jitter=0.25)
        outbox = SQLAlchemyOutboxStorage(
            library_tables, lease_seconds=0.5, max_attempts=4, backoff=backoff
        )
        return OutboxHarness(
            outbox,
            lambda: SQLAlchemyUnitOfWork(session_factory),
            0.5,
            backoff_seconds=backoff.upper_bound(1),
            max_attempts=4,
        )
