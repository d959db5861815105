"""The seed README's code blocks, verbatim (copied from SEED_README.md; do not edit).

Each constant is one ```python block; the tests run them as written, substituting only the
database URL. Adaptations belong in the tests, never here.
"""

#: Quick Start > Basic Usage (SEED_README.md line 45)
QUICK_START = r"""from sqlalchemy.ext.asyncio import create_async_engine, async_sessionmaker
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot

# 1. Define domain model
class Order(AggregateRoot):
    id: str
    customer_id: str
    total: float
    status: str = "pending"

# 2. Define SQLAlchemy model
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy import String, Numeric

class OrderModel(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String, ForeignKey("customers.id"))
    total: Mapped[float] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(String(50))

# 3. Setup infrastructure
engine = create_async_engine("postgresql+asyncpg://user:pass@localhost/db")
session_factory = async_sessionmaker(engine, expire_on_commit=False)

order_repo = SQLAlchemyRepository(
    entity_cls=Order,
    db_model_cls=OrderModel,
)

# 4. Use in application
async def create_order(order_data: dict):
    async with SQLAlchemyUnitOfWork(session_factory=session_factory) as uow:
        order = Order(**order_data)
        await order_repo.add(order, uow=uow)
        await uow.commit()
        return order

async def get_order(order_id: str):
    async with SQLAlchemyUnitOfWork(session_factory=session_factory) as uow:
        return await order_repo.get(order_id, uow=uow)
"""

#: Package Structure > 1. Core Package (SEED_README.md line 167)
CORE_PACKAGE = r"""from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)

# Repository setup
order_repo = SQLAlchemyRepository(Order, OrderModel)

# Usage
async with SQLAlchemyUnitOfWork(session_factory) as uow:
    order = Order(id="123", customer_id="456", total=99.99)
    await order_repo.add(order, uow=uow)
    await uow.commit()
"""

#: Package Structure > 4. Mixins Package (SEED_README.md line 283)
MIXINS = r"""from cqrs_ddd_persistence_sqlalchemy.mixins import (
    VersionMixin,
    AuditableModelMixin,
)

class OrderModel(VersionMixin, AuditableModelMixin, Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    # ... other fields

    # Automatically adds:
    # - version (for optimistic concurrency)
    # - created_at, updated_at (for auditing)
"""

#: Package Structure > 5. Types Package (SEED_README.md line 316)
TYPES = r"""from cqrs_ddd_persistence_sqlalchemy.types import JSONType

class OrderModel(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    metadata: Mapped[dict] = mapped_column(JSONType())  # Works on both PG and SQLite
"""

#: Features > 1. Repository Pattern (SEED_README.md line 334)
REPOSITORY_PATTERN = r"""# Create
order = Order(id="123", total=99.99)
await repo.add(order, uow=uow)

# Read
order = await repo.get("123", uow=uow)

# Update
order.status = "shipped"
await repo.add(order, uow=uow)  # Optimistic concurrency check

# Delete
await repo.delete("123", uow=uow)

# Search with specifications
from cqrs_ddd_specifications import SpecificationBuilder

spec = builder.where("status", "eq", "active").build()
orders = await repo.search(spec, options, uow=uow)
"""

#: Features > 5. Optimistic Concurrency (SEED_README.md line 433)
OPTIMISTIC_CONCURRENCY = r"""# First transaction
async with SQLAlchemyUnitOfWork(session_factory) as uow:
    order = await repo.get("123", uow=uow)
    order.status = "shipped"
    # version = 1 → 2
    await repo.add(order, uow=uow)
    await uow.commit()

# Concurrent transaction (fails)
async with SQLAlchemyUnitOfWork(session_factory) as uow:
    order = await repo.get("123", uow=uow)  # version = 1 (stale)
    order.status = "delivered"
    try:
        await repo.add(order, uow=uow)  # Raises OptimisticConcurrencyError
    except OptimisticConcurrencyError:
        # Reload and retry
        order = await repo.get("123", uow=uow)  # version = 2
        order.status = "delivered"
        await repo.add(order, uow=uow)  # version = 2 → 3
        await uow.commit()
"""

#: Integration Examples > FastAPI Integration (SEED_README.md line 516)
FASTAPI = r"""from fastapi import FastAPI, Depends
from sqlalchemy.ext.asyncio import AsyncSession

app = FastAPI()

# Dependency
async def get_uow():
    async with SQLAlchemyUnitOfWork(session_factory=session_factory) as uow:
        yield uow

@app.post("/orders")
async def create_order(
    order_data: CreateOrderRequest,
    uow: SQLAlchemyUnitOfWork = Depends(get_uow),
):
    order = Order(**order_data.dict())
    await order_repo.add(order, uow=uow)
    await uow.commit()
    return {"id": order.id}

@app.get("/orders/{order_id}")
async def get_order(
    order_id: str,
    uow: SQLAlchemyUnitOfWork = Depends(get_uow),
):
    order = await order_repo.get(order_id, uow=uow)
    return order
"""

#: Integration Examples > Dependency Injection Container (SEED_README.md line 548)
DEPENDENCY_INJECTION = r"""from dependency_injector import containers, providers

class Container(containers.DeclarativeContainer):
    config = providers.Configuration()

    # Infrastructure
    engine = providers.Singleton(
        create_async_engine,
        config.database_url,
    )

    session_factory = providers.Singleton(
        async_sessionmaker,
        engine,
        expire_on_commit=False,
    )

    # Unit of Work
    uow = providers.Factory(
        SQLAlchemyUnitOfWork,
        session_factory=session_factory,
    )

    # Repositories
    order_repo = providers.Singleton(
        SQLAlchemyRepository,
        entity_cls=Order,
        db_model_cls=OrderModel,
    )

    # Services
    order_service = providers.Factory(
        OrderService,
        order_repo=order_repo,
        uow=uow,
    )
"""

#: Integration Examples > Testing (SEED_README.md line 589)
TESTING = r'''import pytest
from sqlalchemy.ext.asyncio import create_async_engine, AsyncSession

@pytest.fixture
async def engine():
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()

@pytest.fixture
async def uow(engine):
    session_factory = async_sessionmaker(engine, expire_on_commit=False)
    async with SQLAlchemyUnitOfWork(session_factory=session_factory) as uow:
        yield uow

async def test_create_order(uow: SQLAlchemyUnitOfWork):
    """Test order creation."""
    order = Order(id="123", customer_id="456", total=99.99)
    await order_repo.add(order, uow=uow)
    await uow.commit()

    loaded = await order_repo.get("123", uow=uow)
    assert loaded.id == "123"
    assert loaded.total == 99.99
'''

#: Performance Optimization > 2. Batch Operations (SEED_README.md line 687)
BATCH = r"""# ✅ GOOD: Single transaction
async with SQLAlchemyUnitOfWork(session_factory) as uow:
    for order in orders:
        await repo.add(order, uow=uow)
    await uow.commit()  # Single commit

# ❌ BAD: Multiple transactions
for order in orders:
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await repo.add(order, uow=uow)
        await uow.commit()
"""

#: Performance Optimization > 3. Streaming Large Results (SEED_README.md line 703)
STREAMING = r"""# ✅ GOOD: Stream results
async for order in (await repo.search(spec, options)).stream():
    process(order)

# ❌ BAD: Load all into memory
orders = await (await repo.search(spec, options))
for order in orders:
    process(order)
"""
