"""A kept statement runs with SQLAlchemy's semantics whichever execution sends it: an INSERT
that leaves out a column with a Python-side default gets that default (the asyncpg fast path
leaves such a statement to SQLAlchemy, which computes it per execution)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import kept
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for

_meta = sa.MetaData()
kept_rows = sa.Table(
    "kept_rows",
    _meta,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("tries", sa.Integer(), nullable=False, default=lambda: 0),
)
INSERT = kept(sa.insert(kept_rows).values(id=sa.bindparam("id")))


async def test_kept_insert_gets_the_python_side_defaults(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_meta.create_all)
    execution = execution_for(engine)
    await execution.execute(INSERT, {"id": "a"})
    async with execution.transaction() as executor:
        await executor.execute(INSERT, {"id": "b"})
    if engine.dialect.driver == "asyncpg":
        from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import compiled_for

        assert compiled_for(INSERT, engine.dialect) is None  # left to SQLAlchemy
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(kept_rows).order_by(kept_rows.c.id))).all()
    assert [tuple(r) for r in rows] == [("a", "pending", 0), ("b", "pending", 0)]
