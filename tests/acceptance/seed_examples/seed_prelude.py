"""What the seed README's blocks assume but do not show: ``Base``, imports, models, a repo.

Every helper returns a fresh namespace (its own ``Base``/metadata), so sections never share
tables. :func:`run_block` executes one block as written in such a namespace (top-level ``await``
allowed), replacing only the placeholder database URLs with the test database's.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

PLACEHOLDER_URLS = (
    "postgresql+asyncpg://user:pass@localhost/db",
    "sqlite+aiosqlite:///:memory:",
)


async def run_block(code: str, namespace: dict[str, Any], url: str | None = None) -> None:
    """Run ``code`` in ``namespace``; ``url`` replaces the README's placeholder URLs."""
    if url is not None:
        for placeholder in PLACEHOLDER_URLS:
            code = code.replace(placeholder, url)
    compiled = compile(
        code, "<seed README>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    if compiled.co_flags & inspect.CO_COROUTINE:
        await eval(compiled, namespace)
    else:
        exec(compiled, namespace)


PRELUDE = """
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_persistence_sqlalchemy import OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder


class Base(DeclarativeBase):
    pass
"""

#: The order model most sections assume (Quick Start's entity, versioned table, no FK).
ORDER_MODELS = """
class Order(AggregateRoot):
    id: str
    customer_id: str | None = None
    total: float
    status: str = "pending"


class OrderModel(VersionMixin, Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String, nullable=True)
    total: Mapped[float] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(String(50))
"""

#: Quick Start's ``OrderModel`` references ``customers.id``.
CUSTOMERS = """
class CustomerModel(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String, primary_key=True)
"""


async def namespace(*parts: str) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "seed_readme"}
    for part in (PRELUDE, *parts):
        await run_block(part, ns)
    return ns


async def create_tables(ns: dict[str, Any], engine: Any = None) -> None:
    engine = engine or ns["engine"]
    async with engine.begin() as conn:
        await conn.run_sync(ns["Base"].metadata.create_all)
