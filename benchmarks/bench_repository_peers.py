"""The repository against the peers a user would pick instead: hand-written SQLAlchemy ORM and
advanced-alchemy's ``SQLAlchemyAsyncRepository``.

The aggregate is ``bench_repository``'s order with 10 line entities (a child table); every side
starts and ends with domain objects (pydantic aggregates), runs one transaction per operation,
on the same engine (the library's ``create_engine``: same pool, same driver settings):

- ``peers.get``: one aggregate with its lines;
- ``peers.add``: one new aggregate with its lines;
- ``peers.add_100``: 100 new aggregates in one transaction — ours is the seed's loop
  (``for order in orders: await repo.add(order, uow=uow)``, one commit), the ORM
  ``session.add_all`` + commit, advanced-alchemy ``add_many`` + commit;
- ``peers.update``: load, change the status and one line, save;
- ``peers.update_20``: 20 loaded aggregates changed and saved in one transaction (ours: the
  loop of ``repo.add``; ORM: one flush at commit; advanced-alchemy: ``update`` per instance);
- ``peers.list_50``: 50 aggregates with their lines, filtered (``status = 'paid' AND total >
  50``), ordered by ``-total, id``;
- ``peers.count``: ``COUNT(*)`` over that filter.

Ratios are to the hand-written ORM (higher is faster); ``ours / advanced-alchemy`` is reported
beside. Without advanced-alchemy installed (``uv sync --group bench``) its variant is skipped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from benchmarks._pg import BenchDb
from benchmarks.bench_repository import (
    BenchBase,
    Order,
    OrderModel,
    Sides,
    domain_to_orm,
    new_order,
    orm_to_domain,
    seed,
)
from benchmarks.harness import Context, Variant, workload
from sqlalchemy.orm import selectinload

from cqrs_ddd_core.domain.aggregate_root import set_persisted_version
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder

try:
    from advanced_alchemy.filters import LimitOffset
    from advanced_alchemy.repository import SQLAlchemyAsyncRepository
except ImportError:  # pragma: no cover - the bench group is not installed
    SQLAlchemyAsyncRepository = None  # type: ignore[assignment,misc]

ORM = "hand-written ORM"
OURS = "ours"
AA = "advanced-alchemy"
BATCH = 100
MANY = 20
PAGE = 50

FILTER_SPEC = (
    SpecificationBuilder().where("status", "eq", "paid").and_where("total", "gt", 50).build()
)
PAGE_OPTIONS = QueryOptions(order_by=["-total", "id"], limit=PAGE)
ORM_FILTER = (OrderModel.status == "paid", OrderModel.total > 50)
LINES = [selectinload(OrderModel.lines)]

Op = Callable[[int], Awaitable[None]]


class Peers(Sides):
    """``bench_repository``'s two sides, the batch / list / count operations, and
    advanced-alchemy."""

    # ---- ours
    async def ours_add_batch(self, orders: list[Order]) -> None:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            for order in orders:
                await self.repo.add(order, uow=uow)
            await uow.commit()

    async def ours_update_many(self, keys: list[str]) -> None:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            for order in await self.repo.get_many(keys, uow=uow):
                order.status = _flipped(order.status)
                order.lines[0].qty += 1
                await self.repo.add(order, uow=uow)
            await uow.commit()

    async def ours_list(self) -> list[Order]:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            found = await self.repo.search(FILTER_SPEC, PAGE_OPTIONS, uow=uow)
        assert len(found) == PAGE
        return list(found)

    async def ours_count(self) -> int:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            return await self.repo.search(FILTER_SPEC, uow=uow).count()

    # ---- hand-written ORM
    async def orm_add_batch(self, orders: list[Order]) -> None:
        async with self.sf() as session, session.begin():
            session.add_all([domain_to_orm(o) for o in orders])
        for order in orders:
            set_persisted_version(order, 1)

    async def orm_update_many(self, keys: list[str]) -> None:
        stmt = sa.select(OrderModel).where(OrderModel.id.in_(keys)).options(*LINES)
        async with self.sf() as session, session.begin():
            for m in (await session.scalars(stmt)).all():
                order = orm_to_domain(m)
                order.status = _flipped(order.status)
                order.lines[0].qty += 1
                m.status = order.status
                m.lines[0].qty = order.lines[0].qty

    async def orm_list(self) -> list[Order]:
        stmt = (
            sa.select(OrderModel)
            .where(*ORM_FILTER)
            .options(*LINES)
            .order_by(OrderModel.total.desc(), OrderModel.id)
            .limit(PAGE)
        )
        async with self.sf() as session, session.begin():
            found = [orm_to_domain(m) for m in (await session.scalars(stmt)).all()]
        assert len(found) == PAGE
        return found

    async def orm_count(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(OrderModel).where(*ORM_FILTER)
        async with self.sf() as session, session.begin():
            return int((await session.execute(stmt)).scalar_one())

    # ---- advanced-alchemy
    async def aa_get(self, key: str) -> Order:
        async with self.sf() as session, session.begin():
            m = await _AaRepo(session=session).get(key, load=LINES)
            return orm_to_domain(m)

    async def aa_add(self, order: Order) -> None:
        async with self.sf() as session, session.begin():
            await _AaRepo(session=session).add(domain_to_orm(order))
        set_persisted_version(order, 1)

    async def aa_add_batch(self, orders: list[Order]) -> None:
        async with self.sf() as session, session.begin():
            await _AaRepo(session=session).add_many([domain_to_orm(o) for o in orders])
        for order in orders:
            set_persisted_version(order, 1)

    async def aa_update(self, key: str, status: str) -> None:
        async with self.sf() as session, session.begin():
            repo = _AaRepo(session=session)
            m = await repo.get(key, load=LINES)
            order = orm_to_domain(m)
            order.status = status
            order.lines[0].qty += 1
            m.status = order.status
            m.lines[0].qty = order.lines[0].qty
            await repo.update(m, load=LINES)

    async def aa_update_many(self, keys: list[str]) -> None:
        async with self.sf() as session, session.begin():
            repo = _AaRepo(session=session)
            models = await repo.get_many(OrderModel.id.in_(keys), load=LINES)
            for m in models:
                order = orm_to_domain(m)
                order.status = _flipped(order.status)
                order.lines[0].qty += 1
                m.status = order.status
                m.lines[0].qty = order.lines[0].qty
                # ``update`` per instance: ``update_many`` is a bulk UPDATE of detached data
                # (it bypasses ``version_id_col`` and fails on the loaded, changed instances)
                await repo.update(m, load=LINES)

    async def aa_list(self) -> list[Order]:
        async with self.sf() as session, session.begin():
            models = await _AaRepo(session=session).get_many(
                *ORM_FILTER,
                LimitOffset(limit=PAGE, offset=0),
                order_by=[(OrderModel.total, True), (OrderModel.id, False)],
                load=LINES,
            )
            found = [orm_to_domain(m) for m in models]
        assert len(found) == PAGE
        return found

    async def aa_count(self) -> int:
        async with self.sf() as session, session.begin():
            return int(await _AaRepo(session=session).count(*ORM_FILTER))


def _flipped(status: str) -> str:
    # Every save changes the root row (each side then writes it, version-checked).
    return "paid" if status == "pending" else "pending"


if SQLAlchemyAsyncRepository is not None:

    class _AaRepo(SQLAlchemyAsyncRepository[OrderModel]):  # type: ignore[misc]
        model_type = OrderModel


def operations(peers: Peers, keys: list[str]) -> dict[str, dict[str, Op]]:
    """workload -> variant -> ``run(n)`` doing ``n`` operations."""
    counter = itertools.count()
    prefixes = {ORM: "orm", OURS: "ours", AA: "aa"}

    def each(label: str, fn: Callable[..., Awaitable[Any]], kind: str) -> Op:
        async def run(n: int) -> None:
            for i in range(n):
                if kind == "add":
                    j = next(counter)
                    await fn(new_order(f"{prefixes[label]}-{j}", j))
                elif kind == "add_batch":
                    start = next(counter) * BATCH
                    await fn(
                        [new_order(f"{prefixes[label]}-b{start + k}", k) for k in range(BATCH)]
                    )
                elif kind == "get":
                    await fn(keys[(i * 7919) % len(keys)])
                elif kind == "update":
                    await fn(keys[(i * 7919) % len(keys)], "paid" if i % 2 else "pending")
                elif kind == "update_many":
                    start = (i * MANY * 7) % (len(keys) - MANY)
                    await fn(keys[start : start + MANY])
                else:
                    await fn()

        return run

    table: dict[str, tuple[str, dict[str, Callable[..., Awaitable[Any]]]]] = {
        "peers.get": ("get", {ORM: peers.orm_get, OURS: peers.ours_get, AA: peers.aa_get}),
        "peers.add": ("add", {ORM: peers.orm_add, OURS: peers.ours_add, AA: peers.aa_add}),
        "peers.add_100": (
            "add_batch",
            {ORM: peers.orm_add_batch, OURS: peers.ours_add_batch, AA: peers.aa_add_batch},
        ),
        "peers.update": (
            "update",
            {ORM: peers.orm_update, OURS: peers.ours_update, AA: peers.aa_update},
        ),
        "peers.update_20": (
            "update_many",
            {ORM: peers.orm_update_many, OURS: peers.ours_update_many, AA: peers.aa_update_many},
        ),
        "peers.list_50": ("list", {ORM: peers.orm_list, OURS: peers.ours_list, AA: peers.aa_list}),
        "peers.count": (
            "count",
            {ORM: peers.orm_count, OURS: peers.ours_count, AA: peers.aa_count},
        ),
    }
    out: dict[str, dict[str, Op]] = {}
    for name, (kind, sides) in table.items():
        out[name] = {
            label: each(label, fn, kind)
            for label, fn in sides.items()
            if label != AA or SQLAlchemyAsyncRepository is not None
        }
    return out


_WORKLOADS: dict[str, tuple[str, str, int]] = {
    # name: (description, unit, operations per sample at scale 1)
    "peers.get": ("get one aggregate with its 10 lines", "ops/s", 100),
    "peers.add": ("add one aggregate with 10 lines", "ops/s", 100),
    "peers.add_100": ("100 new aggregates (10 lines each) in one transaction", "batches/s", 10),
    "peers.update": ("load, change and save one aggregate", "ops/s", 100),
    "peers.update_20": ("20 loaded aggregates changed and saved in one transaction", "txn/s", 20),
    "peers.list_50": ("50 aggregates with lines, filtered and ordered", "ops/s", 50),
    "peers.count": ("COUNT(*) over a filter", "ops/s", 200),
}


def _register(name: str, description: str, unit: str, per_sample: int) -> None:
    @workload(
        name,
        f"{description}: ours vs hand-written ORM and advanced-alchemy",
        unit=unit,
        compare=((OURS, AA),),
    )
    async def build(ctx: Context) -> list[Variant]:
        db = await BenchDb(ctx).open(extra_metadata=BenchBase.metadata)
        peers = Peers(db.engine)
        keys = await seed(peers, max(200, ctx.size(1000)))
        ops = operations(peers, keys)[name]
        n = ctx.size(per_sample)

        def rate(fn: Op) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                start = time.perf_counter()
                await fn(n)
                return n / (time.perf_counter() - start)

            return run

        async def warm() -> None:
            for fn in ops.values():
                await fn(max(1, n // 5))

        return [
            Variant(ORM, rate(ops[ORM]), baseline=True, setup=warm),
            *(Variant(label, rate(fn)) for label, fn in ops.items() if label != ORM),
        ]


for _name, (_description, _unit, _per_sample) in _WORKLOADS.items():
    _register(_name, _description, _unit, _per_sample)
