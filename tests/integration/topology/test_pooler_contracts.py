"""The shipped contract suites through PgBouncer in transaction mode (``pooler="transaction"``).

Event store, outbox, inbox and repository, on the driver of the test URL (asyncpg on the
default stacks, psycopg 3 on the psycopg ones), with clients sharing four server connections
and the test schema applied per transaction (``SET LOCAL search_path``). Without pooler mode
these fail: ``prepared statement "__asyncpg_stmt_…" does not exist`` / ``already exists``
(asyncpg) and ``unsupported startup parameter: search_path`` (both drivers).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_core.testing import (
    ContractOrder,
    EventStoreContract,
    EventStoreHarness,
    InboxContract,
    InboxHarness,
    ManualClock,
    OutboxContract,
    OutboxHarness,
    RepositoryContract,
    RepositoryHarness,
)
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyInbox,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff

_REPOSITORY_TESTS = str(Path(__file__).parents[1] / "repository")
if _REPOSITORY_TESTS not in sys.path:
    sys.path.insert(0, _REPOSITORY_TESTS)


class TestPooledEventStore(EventStoreContract):
    @pytest.fixture
    def harness(
        self, library_tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
    ) -> EventStoreHarness:
        return EventStoreHarness(
            SQLAlchemyEventStore(session_factory),
            lambda: SQLAlchemyUnitOfWork(session_factory),
        )


class TestPooledOutbox(OutboxContract):
    @pytest.fixture
    def harness(
        self, library_tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
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


class TestPooledInbox(InboxContract):
    @pytest.fixture
    def harness(
        self, library_tables: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
    ) -> InboxHarness:
        clock = ManualClock()
        return InboxHarness(
            SQLAlchemyInbox(library_tables, clock=clock),
            lambda: SQLAlchemyUnitOfWork(session_factory),
            clock,
        )


class TestPooledRepository(RepositoryContract):
    @pytest.fixture
    async def harness(self, engine: AsyncEngine) -> RepositoryHarness:
        from repo_models import Base, ContractOrderModel

        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        factory = async_sessionmaker(engine, expire_on_commit=False)
        repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
        return RepositoryHarness(repository=repo, new_uow=lambda: SQLAlchemyUnitOfWork(factory))
