"""``SQLAlchemyRepository`` vs the same work written by hand with the SQLAlchemy ORM.

The aggregate is an order with 10 line entities (a child table). Both sides start and end with
domain objects (pydantic aggregates) and run one transaction per operation on the same engine:

- ``add``: a new aggregate with its lines (ours: ``repo.add`` in a ``SQLAlchemyUnitOfWork``;
  ORM: build the models, ``session.add``, commit; the ORM's ``version_id_col`` is on);
- ``get``: one aggregate by id with its lines (ORM: ``session.get`` with ``selectinload``);
- ``update``: get, change the status and one line, save (ours: version-checked ``UPDATE`` and
  the child rows rewritten; ORM: dirty-tracking flush of the changed rows);
- ``search``: a specification (``status = 'paid' AND total > 50``) ordered by ``-total``, 20
  aggregates with their lines (ORM: the hand-written ``where`` with ``selectinload``).

Target: the repository takes at most 1.2x the hand-written ORM time (ratio = ORM time / ours,
so >= 0.83 meets it).

Every workload also runs both sides on a ``postgresql+psycopg://`` engine over the same tables:
``ours (psycopg)`` against ``hand-written ORM (psycopg)`` (the raw side here is the ORM code, as
on asyncpg), their ratio reported; the asyncpg ORM stays the baseline. Without psycopg those two
variants are skipped with a note.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from benchmarks._pg import OURS_PSYCOPG, BenchDb
from benchmarks.harness import Context, Variant, workload
from sqlalchemy import ForeignKey, Integer, MetaData, Numeric, String
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.domain.entity import Entity
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.repository import SQLAlchemyRepository
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder

LINES = 10


class BenchBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderLine(Entity[str]):
    id: str
    sku: str
    qty: int
    price: Decimal


class Order(AggregateRoot[str]):
    id: str
    customer_id: str
    status: str
    total: Decimal
    lines: list[OrderLine] = []


class OrderModel(VersionMixin, BenchBase):
    __tablename__ = "bench_repo_orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    lines: Mapped[list[OrderLineModel]] = relationship(
        order_by="OrderLineModel.id", cascade="all, delete-orphan"
    )


class OrderLineModel(BenchBase):
    __tablename__ = "bench_repo_order_lines"

    order_id: Mapped[str] = mapped_column(ForeignKey("bench_repo_orders.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sku: Mapped[str] = mapped_column(String(32))
    qty: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))


def new_order(key: str, i: int) -> Order:
    return Order(
        id=key,
        customer_id=f"c-{i % 97}",
        status="paid" if i % 2 else "pending",
        total=Decimal(i % 200) + Decimal("0.99"),
        lines=[
            OrderLine(id=f"l{j:02d}", sku=f"SKU-{j}", qty=j + 1, price=Decimal("9.90"))
            for j in range(LINES)
        ],
    )


SEARCH_SPEC = (
    SpecificationBuilder().where("status", "eq", "paid").and_where("total", "gt", 50).build()
)
SEARCH_OPTIONS = QueryOptions(order_by=["-total", "id"], limit=20)


# ---------------------------------------------------------------------------------------------
# hand-written ORM
# ---------------------------------------------------------------------------------------------
def orm_to_domain(m: OrderModel) -> Order:
    order = Order(
        id=m.id,
        customer_id=m.customer_id,
        status=m.status,
        total=m.total,
        lines=[OrderLine(id=x.id, sku=x.sku, qty=x.qty, price=x.price) for x in m.lines],
    )
    set_persisted_version(order, m.version)
    return order


def domain_to_orm(o: Order) -> OrderModel:
    return OrderModel(
        id=o.id,
        customer_id=o.customer_id,
        status=o.status,
        total=o.total,
        lines=[OrderLineModel(id=x.id, sku=x.sku, qty=x.qty, price=x.price) for x in o.lines],
    )


class Sides:
    """Both implementations over one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sf = async_sessionmaker(engine, expire_on_commit=False)
        self.repo: SQLAlchemyRepository[Order] = SQLAlchemyRepository(Order, OrderModel)

    # ---- ours
    async def ours_add(self, order: Order) -> None:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            await self.repo.add(order, uow=uow)
            await uow.commit()

    async def ours_get(self, key: str) -> Order:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            order = await self.repo.get(key, uow=uow)
        assert order is not None and len(order.lines) == LINES
        return order

    async def ours_update(self, key: str, status: str) -> None:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            order = await self.repo.get(key, uow=uow)
            assert order is not None
            order.status = status
            order.lines[0].qty += 1
            await self.repo.add(order, uow=uow)
            await uow.commit()

    async def ours_search(self) -> list[Order]:
        async with SQLAlchemyUnitOfWork(self.sf) as uow:
            found = await self.repo.search(SEARCH_SPEC, SEARCH_OPTIONS, uow=uow)
        assert len(found) == 20
        return list(found)

    # ---- hand-written ORM
    async def orm_add(self, order: Order) -> None:
        async with self.sf() as session, session.begin():
            session.add(domain_to_orm(order))
        set_persisted_version(order, 1)

    async def orm_get(self, key: str) -> Order:
        async with self.sf() as session, session.begin():
            m = await session.get(OrderModel, key, options=[selectinload(OrderModel.lines)])
            assert m is not None
            order = orm_to_domain(m)
        assert len(order.lines) == LINES
        return order

    async def orm_update(self, key: str, status: str) -> None:
        async with self.sf() as session, session.begin():
            m = await session.get(OrderModel, key, options=[selectinload(OrderModel.lines)])
            assert m is not None
            order = orm_to_domain(m)
            # the domain change, then copied back onto the ORM objects by hand
            order.status = status
            order.lines[0].qty += 1
            m.status = order.status
            by_id = {x.id: x for x in m.lines}
            for line in order.lines:
                row = by_id[line.id]
                row.sku, row.qty, row.price = line.sku, line.qty, line.price

    async def orm_search(self) -> list[Order]:
        stmt = (
            sa.select(OrderModel)
            .where(OrderModel.status == "paid", OrderModel.total > 50)
            .options(selectinload(OrderModel.lines))
            .order_by(OrderModel.total.desc(), OrderModel.id)
            .limit(20)
        )
        async with self.sf() as session, session.begin():
            found = [orm_to_domain(m) for m in (await session.scalars(stmt)).all()]
        assert len(found) == 20
        return found


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(BenchBase.metadata.create_all)


async def seed(sides: Sides, count: int) -> list[str]:
    """``count`` orders written with one multi-row insert per table."""
    keys = [f"seed-{i}" for i in range(count)]
    orders = [new_order(k, i) for i, k in enumerate(keys)]
    async with sides.engine.begin() as conn:
        await conn.execute(
            sa.insert(OrderModel.__table__),
            [
                {
                    "id": o.id,
                    "customer_id": o.customer_id,
                    "status": o.status,
                    "total": o.total,
                    "version": 1,
                }
                for o in orders
            ],
        )
        await conn.execute(
            sa.insert(OrderLineModel.__table__),
            [
                {"order_id": o.id, "id": x.id, "sku": x.sku, "qty": x.qty, "price": x.price}
                for o in orders
                for x in o.lines
            ],
        )
    return keys


def operations(sides: Sides, keys: list[str], new: str = "new") -> dict[str, dict[str, Any]]:
    """workload → variant → async callable doing ``n`` operations; ``add`` writes keys
    ``<new>-<i>`` (one prefix per ``Sides`` on the same tables)."""
    counter = iter(range(10**12))

    def adder(fn: Any) -> Any:
        async def run(n: int) -> None:
            for _ in range(n):
                i = next(counter)
                await fn(new_order(f"{new}-{i}", i))

        return run

    def getter(fn: Any) -> Any:
        async def run(n: int) -> None:
            for i in range(n):
                await fn(keys[(i * 7919) % len(keys)])

        return run

    def updater(fn: Any) -> Any:
        async def run(n: int) -> None:
            for i in range(n):
                # both sides touch disjoint halves of the seed, status flips keep search stable
                await fn(keys[(i * 7919) % len(keys)], "paid" if i % 2 else "pending")

        return run

    def searcher(fn: Any) -> Any:
        async def run(n: int) -> None:
            for _ in range(n):
                await fn()

        return run

    return {
        "repository add (10 children)": {
            "hand-written ORM": adder(sides.orm_add),
            "ours": adder(sides.ours_add),
        },
        "repository get (10 children)": {
            "hand-written ORM": getter(sides.orm_get),
            "ours": getter(sides.ours_get),
        },
        "repository update (get+change+save)": {
            "hand-written ORM": updater(sides.orm_update),
            "ours": updater(sides.ours_update),
        },
        "repository search (spec, 20 of them)": {
            "hand-written ORM": searcher(sides.orm_search),
            "ours": searcher(sides.ours_search),
        },
    }


# ---------------------------------------------------------------------------------------------
# harness registration
# ---------------------------------------------------------------------------------------------
ORM_PSYCOPG = "hand-written ORM (psycopg)"

_OPS: dict[str, tuple[str, str]] = {
    "repo.add": ("repository add (10 children)", "add a new aggregate with 10 child rows"),
    "repo.get": ("repository get (10 children)", "get one aggregate with its 10 child rows"),
    "repo.update": ("repository update (get+change+save)", "load, change, save one aggregate"),
    "repo.search": ("repository search (spec, 20 of them)", "search: spec + order + limit 20"),
}


def _register(name: str, key: str, description: str) -> None:
    @workload(
        name,
        f"{description}: ours vs hand-written ORM (target >= 0.83x)",
        unit="ops/s",
        compare=((OURS_PSYCOPG, ORM_PSYCOPG),),
    )
    async def build(ctx: Context) -> list[Variant]:
        db = await BenchDb(ctx).open(extra_metadata=BenchBase.metadata)
        sides = Sides(db.engine)
        keys = await seed(sides, max(100, ctx.size(1000)))
        ops = operations(sides, keys)[key]
        psycopg_engine = db.make_psycopg_engine()
        if psycopg_engine is not None:
            psycopg_ops = operations(Sides(psycopg_engine), keys, new="new-psycopg")[key]
            ops[OURS_PSYCOPG] = psycopg_ops["ours"]
            ops[ORM_PSYCOPG] = psycopg_ops["hand-written ORM"]
        n = ctx.size(100)

        def rate(fn: Any) -> Any:
            async def run() -> float:
                start = time.perf_counter()
                await fn(n)
                return n / (time.perf_counter() - start)

            return run

        async def warm() -> None:
            for fn in ops.values():
                await fn(max(1, n // 5))

        return [
            Variant("hand-written ORM", rate(ops["hand-written ORM"]), baseline=True, setup=warm),
            *(Variant(label, rate(fn)) for label, fn in ops.items() if label != "hand-written ORM"),
        ]


for _name, (_key, _description) in _OPS.items():
    _register(_name, _key, _description)
