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


async def test_json_null_satisfies_no_document_operator_like_in_memory(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    # A JSON null at a path is a null value (is_null holds). PostgreSQL's 'null' @> 'null' and
    # jsonb_path_exists('null', '$') are true; the in-memory evaluator says false, so must SQL.
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    docs = {"null": {"k": None}, "value": {"k": "x"}, "missing": {}}
    async with session_factory() as session, session.begin():
        session.add_all([Doc(id=key, meta=meta) for key, meta in docs.items()])
    cases = [
        ("meta.k", "json_contains", None),
        ("meta.k", "json_contained_by", None),
        ("meta.k", "json_contained_by", [None, "x"]),
        ("meta.k", "json_path_exists", "$"),
        ("meta.k", "eq", "x"),  # legitimate comparisons keep working
        ("meta.k", "is_null", True),
        ("meta", "json_has_key", "k"),
    ]
    async with session_factory() as session:
        for field, op, value in cases:
            spec = SpecificationBuilder().where(field, op, value).build()
            for candidate in (spec, ~spec):
                expected = sorted(
                    k for k, m in docs.items() if candidate.is_satisfied_by({"meta": m})
                )
                stmt = select(Doc.id).where(build_sqla_filter(Doc, candidate)).order_by(Doc.id)
                got = (await session.execute(stmt)).scalars().all()
                assert got == expected, (field, op, value, candidate.to_dict())
