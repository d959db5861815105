"""The core ``IRepository`` contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from repo_models import ContractOrderModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.testing import ContractOrder, RepositoryContract, RepositoryHarness
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork


class TestSQLAlchemyRepositoryContract(RepositoryContract):
    @pytest.fixture
    async def harness(self, repo_engine: AsyncEngine) -> RepositoryHarness:
        factory = async_sessionmaker(repo_engine, expire_on_commit=False)
        repo = SQLAlchemyRepository(ContractOrder, ContractOrderModel)
        return RepositoryHarness(repository=repo, new_uow=lambda: SQLAlchemyUnitOfWork(factory))
