"""The SQLAlchemy event store passes the shipped ``IEventStore`` contract on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.testing import EventStoreContract, EventStoreHarness
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork


class TestSQLAlchemyEventStoreContract(EventStoreContract):
    @pytest.fixture
    def harness(
        self, library_tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
    ) -> EventStoreHarness:
        return EventStoreHarness(
            SQLAlchemyEventStore(session_factory),
            lambda: SQLAlchemyUnitOfWork(session_factory),
        )
