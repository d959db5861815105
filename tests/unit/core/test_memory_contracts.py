"""The in-memory adapters pass the shipped contract suites."""

from __future__ import annotations

import pytest

from cqrs_ddd_core.adapters.memory import (
    InMemoryEventStore,
    InMemoryOutboxStorage,
    InMemoryRepository,
    InMemoryUnitOfWork,
)
from cqrs_ddd_core.testing import (
    ContractOrder,
    EventStoreContract,
    EventStoreHarness,
    OutboxContract,
    OutboxHarness,
    RepositoryContract,
    RepositoryHarness,
)


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def harness(self) -> RepositoryHarness:
        return RepositoryHarness(InMemoryRepository(ContractOrder), InMemoryUnitOfWork)


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def harness(self) -> EventStoreHarness:
        return EventStoreHarness(InMemoryEventStore(), InMemoryUnitOfWork)


class TestInMemoryOutbox(OutboxContract):
    @pytest.fixture
    def harness(self) -> OutboxHarness:
        return OutboxHarness(InMemoryOutboxStorage(lease_seconds=0.3), InMemoryUnitOfWork, 0.3)
