"""Specifications reach into the library's own ``JSONType`` columns (a TypeDecorator over JSON)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_persistence_sqlalchemy.types import JSONType
from cqrs_ddd_specifications import SpecificationBuilder


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "spec_jsontype_docs"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType())


async def test_dotted_path_and_containment_on_jsontype(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with session_factory() as session, session.begin():
        session.add_all(
            [
                Doc(id="a", meta={"tier": "gold", "tags": ["premium"]}),
                Doc(id="b", meta={"tier": "silver", "tags": []}),
            ]
        )
    path = SpecificationBuilder().where("meta.tier", "eq", "gold").build()
    contains = SpecificationBuilder().where("metadata", "@>", {"tags": ["premium"]}).build()
    async with session_factory() as session:
        for spec in (path, contains):
            rows = await session.execute(select(Doc.id).where(build_sqla_filter(Doc, spec)))
            assert rows.scalars().all() == ["a"]
