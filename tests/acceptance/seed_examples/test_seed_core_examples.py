"""Seed README: Quick Start, Core Package, Repository Pattern, Optimistic Concurrency, Mixins,
Types, Batch Operations and Streaming blocks, run as written on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import InvalidRequestError, SAWarning
from tests.acceptance.seed_examples.seed_blocks import (
    BATCH,
    CORE_PACKAGE,
    MIXINS,
    OPTIMISTIC_CONCURRENCY,
    QUICK_START,
    REPOSITORY_PATTERN,
    STREAMING,
    TYPES,
)
from tests.acceptance.seed_examples.seed_prelude import (
    CUSTOMERS,
    ORDER_MODELS,
    create_tables,
    namespace,
    run_block,
)


async def test_seed_quick_start_and_core_package(seed_url: str) -> None:
    ns = await namespace(CUSTOMERS)
    await run_block(QUICK_START, ns, seed_url)
    try:
        await create_tables(ns)
        async with ns["engine"].begin() as conn:
            await conn.execute(sa.insert(ns["CustomerModel"]), [{"id": "c1"}, {"id": "456"}])
        order = await ns["create_order"]({"id": "1", "customer_id": "c1", "total": 99.99})
        assert order.version == 1
        loaded = await ns["get_order"]("1")
        assert (loaded.id, loaded.customer_id, loaded.total, loaded.status) == (
            "1",
            "c1",
            99.99,
            "pending",
        )
        assert await ns["get_order"]("missing") is None

        await run_block(CORE_PACKAGE, ns)
        assert ns["order"].version == 1
        assert (await ns["get_order"]("123")).customer_id == "456"
    finally:
        await ns["engine"].dispose()


async def _versioned(seed_url: str) -> dict[str, Any]:
    ns = await namespace(ORDER_MODELS)
    ns["engine"] = sa.ext.asyncio.create_async_engine(seed_url)
    ns["session_factory"] = sa.ext.asyncio.async_sessionmaker(ns["engine"], expire_on_commit=False)
    ns["repo"] = ns["SQLAlchemyRepository"](ns["Order"], ns["OrderModel"])
    await create_tables(ns)
    return ns


async def test_seed_repository_pattern(seed_url: str) -> None:
    ns = await _versioned(seed_url)
    try:
        Order, repo, uow_cls = ns["Order"], ns["repo"], ns["SQLAlchemyUnitOfWork"]
        async with uow_cls(ns["session_factory"]) as uow:
            await repo.add(Order(id="a1", total=5, status="active"), uow=uow)
            await uow.commit()
        ns["builder"] = ns["SpecificationBuilder"]()
        ns["options"] = ns["QueryOptions"](order_by=["-total"], limit=10)
        async with uow_cls(ns["session_factory"]) as uow:
            ns["uow"] = uow
            await run_block(REPOSITORY_PATTERN, ns)
            assert ns["order"].status == "shipped"
            assert await repo.exists("123", uow=uow) is False  # deleted
            assert [o.id for o in ns["orders"]] == ["a1"]
            await uow.commit()
    finally:
        await ns["engine"].dispose()


async def test_seed_optimistic_concurrency_as_written(seed_url: str) -> None:
    ns = await _versioned(seed_url)
    try:
        async with ns["SQLAlchemyUnitOfWork"](ns["session_factory"]) as uow:
            await ns["repo"].add(ns["Order"](id="123", total=1), uow=uow)
            await uow.commit()
        # as written, the two transactions run one after the other: the second sees version 2
        # and its (uncommitted) update is rolled back at the end of its block
        await run_block(OPTIMISTIC_CONCURRENCY, ns)
        async with ns["SQLAlchemyUnitOfWork"](ns["session_factory"]) as uow:
            final = await ns["repo"].get("123", uow=uow)
        assert final.status == "shipped" and final.version == 2
    finally:
        await ns["engine"].dispose()


async def test_seed_optimistic_concurrency_with_a_real_conflict(seed_url: str) -> None:
    """The second transaction's ``get`` is followed by another writer's commit, so its ``add``
    raises and the block's ``except`` branch reloads, retries and commits in the same UoW."""
    ns = await _versioned(seed_url)
    first, second = OPTIMISTIC_CONCURRENCY.split("# Concurrent transaction (fails)")
    try:
        async with ns["SQLAlchemyUnitOfWork"](ns["session_factory"]) as uow:
            await ns["repo"].add(ns["Order"](id="123", total=1), uow=uow)
            await uow.commit()
        await run_block(first, ns)
        repo = ns["repo"]
        factory = ns["session_factory"]
        conflicts: list[Exception] = []

        class InterleavedRepository(type(repo)):  # type: ignore[misc]
            calls = 0

            async def get(self, entity_id: Any, **kw: Any) -> Any:
                loaded = await super().get(entity_id, **kw)
                InterleavedRepository.calls += 1
                if InterleavedRepository.calls == 1:  # somebody else commits right now
                    async with ns["SQLAlchemyUnitOfWork"](factory) as other:
                        fresh = await super().get(entity_id, uow=other)
                        fresh.status = "returned"
                        await super().add(fresh, uow=other)
                        await other.commit()
                return loaded

            async def add(self, entity: Any, **kw: Any) -> Any:
                try:
                    return await super().add(entity, **kw)
                except ns["OptimisticConcurrencyError"] as exc:
                    conflicts.append(exc)
                    raise

        ns["repo"] = InterleavedRepository(ns["Order"], ns["OrderModel"])
        await run_block(second, ns)
        assert len(conflicts) == 1 and conflicts[0].expected_version == 2
        ns["repo"] = repo
        async with ns["SQLAlchemyUnitOfWork"](factory) as uow:
            final = await repo.get("123", uow=uow)
        assert final.status == "delivered" and final.version == 4
    finally:
        await ns["engine"].dispose()


async def test_seed_mixins(seed_url: str) -> None:
    ns = await namespace()
    await run_block(MIXINS, ns)
    columns = set(ns["OrderModel"].__table__.c.keys())
    assert {"id", "version", "created_at", "updated_at"} <= columns
    ns["engine"] = sa.ext.asyncio.create_async_engine(seed_url)
    try:
        await create_tables(ns)
        await run_block(
            "class Order(AggregateRoot):\n    id: str\n"
            "repo = SQLAlchemyRepository(Order, OrderModel)\n"
            "session_factory = async_sessionmaker(engine, expire_on_commit=False)\n"
            "async with SQLAlchemyUnitOfWork(session_factory) as uow:\n"
            "    order = Order(id='1')\n"
            "    await repo.add(order, uow=uow)\n"
            "    await uow.commit()\n"
            "async with session_factory() as session:\n"
            "    row = (await session.get(OrderModel, '1'))\n",
            ns,
        )
        row = ns["row"]
        assert row.version == 1 and row.created_at.tzinfo is not None
        assert row.updated_at == row.created_at
    finally:
        await ns["engine"].dispose()


async def test_seed_types_metadata_attribute_is_reserved(seed_url: str) -> None:
    """As written, SQLAlchemy refuses the attribute name ``metadata`` (an error in 2.0, a warning
    in 2.1, where the attribute then hides the class's ``MetaData``); the documented form maps
    the column ``metadata`` to another attribute name."""
    ns = await namespace()
    with pytest.raises((InvalidRequestError, SAWarning), match="reserved"):
        await run_block(TYPES, ns)
    documented = TYPES.replace(
        "metadata: Mapped[dict] = mapped_column(JSONType())",
        'meta: Mapped[dict] = mapped_column("metadata", JSONType())',
    )
    ns = await namespace()
    await run_block(documented, ns)
    ns["engine"] = sa.ext.asyncio.create_async_engine(seed_url)
    try:
        await create_tables(ns)
        await run_block(
            "class Order(AggregateRoot):\n    id: str\n    meta: dict[str, Any] = {}\n"
            "repo = SQLAlchemyRepository(Order, OrderModel)\n"
            "session_factory = async_sessionmaker(engine, expire_on_commit=False)\n"
            "async with SQLAlchemyUnitOfWork(session_factory) as uow:\n"
            "    await repo.add(Order(id='1', meta={'tags': ['premium'], 'n': Decimal('1.5')}))\n"
            "    await uow.commit()\n"
            "async with SQLAlchemyUnitOfWork(session_factory) as uow:\n"
            "    loaded = await repo.get('1')\n"
            "    found = await repo.search({'op': 'eq', 'attr': 'id', 'val': '1'})\n",
            ns,
        )
        assert ns["loaded"].meta == {"tags": ["premium"], "n": "1.5"}
        assert "metadata" in ns["OrderModel"].__table__.c and len(ns["found"]) == 1
    finally:
        await ns["engine"].dispose()


async def test_seed_batch_and_streaming(seed_url: str) -> None:
    ns = await _versioned(seed_url)
    try:
        Order = ns["Order"]
        ns["orders"] = [Order(id=f"o{i}", total=i) for i in range(25)]
        await run_block(BATCH.split("# ❌ BAD")[0], ns)
        ns["spec"] = ns["SpecificationBuilder"]().where("total", "gte", 10).build()
        ns["options"] = ns["QueryOptions"](order_by=["total"])
        seen: list[str] = []
        ns["process"] = lambda order: seen.append(order.id)
        ns["repo"] = ns["SQLAlchemyRepository"](Order, ns["OrderModel"], bind=ns["session_factory"])
        await run_block(STREAMING, ns)
        assert seen == [f"o{i}" for i in range(10, 25)] * 2  # GOOD and BAD forms
    finally:
        await ns["engine"].dispose()
