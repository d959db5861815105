"""Contract every ``IRepository`` adapter passes (entity: ``ContractOrder``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from cqrs_ddd_core.errors import OptimisticConcurrencyError
from cqrs_ddd_core.testing.models import ContractOrder

__all__ = ["RepositoryContract", "RepositoryHarness"]


@dataclass
class RepositoryHarness:
    repository: Any
    new_uow: Callable[[], Any]


def _order(**kw: Any) -> ContractOrder:
    data: dict[str, Any] = {"id": uuid.uuid4().hex, "customer_id": "c1", "total": Decimal("9.99")}
    data.update(kw)
    return ContractOrder(**data)


class RepositoryContract:
    """Subclass and override the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> RepositoryHarness:
        raise NotImplementedError("override the harness fixture")

    async def _save(self, h: RepositoryHarness, order: ContractOrder) -> None:
        async with h.new_uow() as uow:
            await h.repository.add(order, uow=uow)
            await uow.commit()

    async def test_add_then_get_round_trips(self, harness: RepositoryHarness) -> None:
        order = _order(status="paid", total=Decimal("12.50"))
        await self._save(harness, order)
        async with harness.new_uow() as uow:
            loaded = await harness.repository.get(order.id, uow=uow)
        assert loaded is not None
        assert (loaded.id, loaded.customer_id, loaded.status) == (order.id, "c1", "paid")
        assert loaded.total == Decimal("12.50")
        assert loaded.version == 1

    async def test_get_missing_returns_none(self, harness: RepositoryHarness) -> None:
        async with harness.new_uow() as uow:
            assert await harness.repository.get("missing", uow=uow) is None
            assert await harness.repository.exists("missing", uow=uow) is False

    async def test_version_bumps_only_after_commit(self, harness: RepositoryHarness) -> None:
        order = _order()
        async with harness.new_uow() as uow:
            await harness.repository.add(order, uow=uow)
            assert order.version == 0
            await uow.commit()
        assert order.version == 1
        order.status = "shipped"
        async with harness.new_uow() as uow:
            await harness.repository.add(order, uow=uow)
            await uow.rollback()
        assert order.version == 1  # rolled back: unchanged
        async with harness.new_uow() as uow:
            assert (await harness.repository.get(order.id, uow=uow)).status == "pending"

    async def test_uncommitted_work_is_rolled_back(self, harness: RepositoryHarness) -> None:
        order = _order()
        async with harness.new_uow() as uow:
            await harness.repository.add(order, uow=uow)
        async with harness.new_uow() as uow:
            assert await harness.repository.exists(order.id, uow=uow) is False
        assert order.version == 0

    async def test_update_increments_version(self, harness: RepositoryHarness) -> None:
        order = _order()
        await self._save(harness, order)
        order.status = "shipped"
        await self._save(harness, order)
        assert order.version == 2
        async with harness.new_uow() as uow:
            loaded = await harness.repository.get(order.id, uow=uow)
        assert loaded is not None and loaded.status == "shipped" and loaded.version == 2

    async def test_stale_write_raises_optimistic_concurrency(
        self, harness: RepositoryHarness
    ) -> None:
        order = _order()
        await self._save(harness, order)
        async with harness.new_uow() as uow:
            first = await harness.repository.get(order.id, uow=uow)
            second = await harness.repository.get(order.id, uow=uow)
        assert first is not None and second is not None
        first.status = "shipped"
        await self._save(harness, first)
        second.status = "cancelled"
        with pytest.raises(OptimisticConcurrencyError):
            await self._save(harness, second)
        async with harness.new_uow() as uow:
            final = await harness.repository.get(order.id, uow=uow)
        assert final is not None and final.status == "shipped" and final.version == 2

    async def test_new_aggregate_with_existing_id_conflicts(
        self, harness: RepositoryHarness
    ) -> None:
        order = _order()
        await self._save(harness, order)
        with pytest.raises(OptimisticConcurrencyError):
            await self._save(harness, _order(id=order.id))

    async def test_delete_removes_and_stale_delete_conflicts(
        self, harness: RepositoryHarness
    ) -> None:
        order = _order()
        await self._save(harness, order)
        async with harness.new_uow() as uow:
            stale = await harness.repository.get(order.id, uow=uow)
        order.status = "shipped"
        await self._save(harness, order)
        with pytest.raises(OptimisticConcurrencyError):
            async with harness.new_uow() as uow:
                await harness.repository.delete(stale, uow=uow)
                await uow.commit()
        async with harness.new_uow() as uow:
            await harness.repository.delete(order, uow=uow)
            await uow.commit()
        async with harness.new_uow() as uow:
            assert await harness.repository.get(order.id, uow=uow) is None

    async def test_deleted_row_is_not_resurrected(self, harness: RepositoryHarness) -> None:
        order = _order()
        await self._save(harness, order)
        async with harness.new_uow() as uow:
            await harness.repository.delete(order.id, uow=uow)
            await uow.commit()
        order.status = "shipped"
        with pytest.raises(OptimisticConcurrencyError):
            await self._save(harness, order)
        async with harness.new_uow() as uow:
            assert await harness.repository.exists(order.id, uow=uow) is False

    async def test_get_many_returns_existing_only(self, harness: RepositoryHarness) -> None:
        a, b = _order(), _order()
        await self._save(harness, a)
        await self._save(harness, b)
        async with harness.new_uow() as uow:
            found = await harness.repository.get_many([a.id, "nope", b.id], uow=uow)
        assert sorted(o.id for o in found) == sorted([a.id, b.id])

    async def test_search_filters_orders_and_paginates(self, harness: RepositoryHarness) -> None:
        specs = pytest.importorskip("cqrs_ddd_specifications")
        customer = uuid.uuid4().hex
        for i in range(6):
            status = "paid" if i % 2 == 0 else "pending"
            await self._save(harness, _order(customer_id=customer, total=Decimal(i), status=status))
        spec = (
            specs.SpecificationBuilder()
            .where("customer_id", "eq", customer)
            .and_where("status", "eq", "paid")
            .build()
        )
        options = specs.QueryOptions(order_by=["-total"], limit=2)
        async with harness.new_uow() as uow:
            page = await harness.repository.search(spec, options, uow=uow)
            total = await harness.repository.search(spec, uow=uow).count()
            negated = await harness.repository.search(
                specs.SpecificationBuilder().where("customer_id", "eq", customer).build() & ~spec,
                uow=uow,
            )
        assert [o.total for o in page] == [Decimal(4), Decimal(2)]
        assert total == 3
        assert sorted(o.status for o in negated) == ["pending"] * 3
