"""Archivable (soft delete), auditable (database clock, actor) and version mixins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from repo_models import Customer, CustomerModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import OptimisticConcurrencyError, UniqueViolationError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.mixins import acting_as, set_actor_provider


async def test_delete_archives_hides_and_restores(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Customer, CustomerModel, bind=factory)
    assert repo.archivable
    ann = Customer(id="ann", email="ann@example.com")
    with acting_as("alice"):
        await repo.add(ann)
    loaded = await repo.get("ann")
    assert loaded is not None and loaded.created_by == "alice" and loaded.updated_by == "alice"
    assert loaded.created_at is not None and loaded.created_at.tzinfo is not None

    with acting_as("bob"):
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await repo.delete(loaded, uow=uow)
            await uow.commit()
    assert loaded.version == 2
    assert await repo.get("ann") is None
    assert await repo.exists("ann") is False
    assert await repo.search().count() == 0
    archived = await repo.get("ann", include_archived=True)
    assert archived is not None and archived.archived_by == "bob" and archived.archived_at
    assert [c.id for c in await repo.search(include_archived=True)] == ["ann"]

    # uniqueness holds among live rows only
    await repo.add(Customer(id="ann2", email="ann@example.com"))
    with pytest.raises(UniqueViolationError):
        await repo.add(Customer(id="ann3", email="ann@example.com"))

    # an archived row is not updated behind the archive
    loaded.email = "other@example.com"
    with pytest.raises(OptimisticConcurrencyError):
        await repo.add(loaded)

    # restoring would make two live rows with one email
    with pytest.raises(UniqueViolationError):
        await repo.restore("ann")
    await repo.delete("ann2")
    await repo.restore("ann")
    restored = await repo.get("ann")
    assert restored is not None and restored.archived_at is None and restored.version == 3


async def test_updated_at_moves_and_provider_supplies_actor(repo_engine: AsyncEngine) -> None:
    factory = async_sessionmaker(repo_engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(Customer, CustomerModel, bind=factory)
    set_actor_provider(lambda: "system")
    try:
        await repo.add(Customer(id="x", email="x@example.com"))
        first = await repo.get("x")
        assert first is not None and first.updated_by == "system"
        await asyncio.sleep(0.01)
        first.email = "y@example.com"
        with acting_as("carol"):
            await repo.add(first)
    finally:
        set_actor_provider(None)
    second = await repo.get("x")
    assert second is not None and second.created_by == "system" and second.updated_by == "carol"
    assert first.updated_at is not None and second.updated_at is not None
    assert second.created_at == first.created_at
    if repo_engine.dialect.name == "sqlite":  # PostgreSQL's now() is the transaction time
        assert second.updated_at > first.updated_at
    else:
        assert second.updated_at >= first.updated_at


async def test_archivable_partial_indexes_exist(repo_engine: AsyncEngine) -> None:
    def indexes(conn: Any) -> dict[str, Any]:
        return {ix["name"]: ix for ix in sa.inspect(conn).get_indexes("customers_arch")}

    async with repo_engine.connect() as conn:
        found = await conn.run_sync(indexes)
        assert {"ix_customers_arch_archived", "uq_customers_arch_email_live"} <= set(found)
        assert found["uq_customers_arch_email_live"]["unique"]
        if repo_engine.dialect.name == "postgresql":
            defs = (
                await conn.execute(
                    sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"),
                    {"t": "customers_arch"},
                )
            ).all()
            partial = {name: d for name, d in defs if "WHERE" in d}
            assert "archived_at IS NULL" in partial["uq_customers_arch_email_live"]
            assert "archived_at IS NOT NULL" in partial["ix_customers_arch_archived"]
