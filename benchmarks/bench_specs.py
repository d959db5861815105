"""Specification compile time: a 50-leaf specification vs the same filter written by hand.

Three costs are measured per query, each for ``build_sqla_filter`` and for a hand-written
SQLAlchemy expression producing the same predicate (same columns, same NULL handling):

- ``build``: JSON AST → SQLAlchemy expression (``build_sqla_filter(model, spec_dict)``; includes
  parsing and validating the dict), vs building the expression with column operators;
- ``per query``: build + what SQLAlchemy does on every execution (cache key, compiled-cache
  lookup, or a full compile when the statement is not cacheable) — the real per-query cost;
- ``cold compile``: build + a full compile to PostgreSQL SQL (a cache miss).

``build_sqla_filter`` is measured with and without ``dialect="postgresql"``: without it,
dialect-specific leaves (here ``startswith``) are deferred to compile time and make the statement
uncacheable, so every execution recompiles.

No database is needed: these are CPU costs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from benchmarks.harness import Context, Variant, workload
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter

__all__ = ["SPEC", "hand_written", "variants"]


class _Base(DeclarativeBase):
    pass


class BenchCustomer(_Base):
    __tablename__ = "bench_spec_customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class BenchOrder(_Base):
    __tablename__ = "bench_spec_order"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str | None] = mapped_column(sa.String(20))
    total: Mapped[int | None]
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("bench_spec_customer.id"))
    customer: Mapped[BenchCustomer] = relationship()
    lines: Mapped[list[BenchLine]] = relationship()


class BenchLine(_Base):
    __tablename__ = "bench_spec_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("bench_spec_order.id"))
    sku: Mapped[str] = mapped_column(sa.String(20))
    qty: Mapped[int]


def _spec() -> dict[str, Any]:
    """``and`` of 10 ``or`` groups of 5 leaves: 50 leaves, 61 nodes, 5 operator kinds,
    a negated leaf (NULL-keeping form), a ``startswith`` (dialect-specific) and an ``EXISTS``
    through a to-many relationship."""
    groups = []
    for g in range(10):
        last = (
            {"op": "startswith", "attr": "status", "val": f"x{g}"}
            if g % 2 == 0
            else {"op": ">", "attr": "lines.qty", "val": g}
        )
        groups.append(
            {
                "op": "or",
                "conditions": [
                    {"op": "=", "attr": "status", "val": f"s{g}"},
                    {"op": ">", "attr": "total", "val": g * 10},
                    {"op": "in", "attr": "status", "val": [f"a{g}", f"b{g}", f"c{g}"]},
                    {"op": "!=", "attr": "total", "val": g},
                    last,
                ],
            }
        )
    return {"op": "and", "conditions": groups}


SPEC = _spec()


def hand_written(spec: dict[str, Any] = SPEC) -> sa.ColumnElement[bool]:
    """The same predicate written by hand with column operators (values taken from ``spec``)."""
    o, line = BenchOrder, BenchLine
    groups = []
    for group in spec["conditions"]:
        eq, gt, in_, ne, last = (c["val"] for c in group["conditions"])
        if group["conditions"][4]["op"] == "startswith":
            escaped = last.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            tail = o.status.like(escaped + "%", escape="\\")
        else:
            tail = o.lines.any(line.qty > last)
        groups.append(
            sa.or_(
                o.status == eq,
                o.total > gt,
                o.status.in_(in_),
                sa.or_(o.total.is_(None), o.total != ne),
                tail,
            )
        )
    return sa.and_(*groups)


_DIALECT = PGDialect_asyncpg()


def _per_query(build: Callable[[], sa.ColumnElement[bool]]) -> Callable[[], Any]:
    """Build the filter, then do what ``Connection.execute`` does before talking to the
    server: cache key + compiled-cache lookup, or a full compile if uncacheable."""
    cache: dict[Any, Any] = {}

    def run() -> Any:
        stmt = sa.select(BenchOrder.id).where(build())
        return stmt._compile_w_cache(  # the call Connection.execute makes
            _DIALECT, compiled_cache=cache, column_keys=[]
        )

    return run


def _cold(build: Callable[[], sa.ColumnElement[bool]]) -> Callable[[], Any]:
    def run() -> Any:
        return sa.select(BenchOrder.id).where(build()).compile(dialect=_DIALECT)

    return run


def variants() -> dict[str, dict[str, Callable[[], Any]]]:
    """workload → variant → a zero-argument callable doing one operation."""

    def ours() -> sa.ColumnElement[bool]:
        return build_sqla_filter(BenchOrder, SPEC)

    def ours_pg() -> sa.ColumnElement[bool]:
        return build_sqla_filter(BenchOrder, SPEC, dialect="postgresql")

    def hand() -> sa.ColumnElement[bool]:
        return hand_written(SPEC)

    builders = {
        "build_sqla_filter": ours,
        "build_sqla_filter(dialect=pg)": ours_pg,
        "hand-written": hand,
    }
    return {
        "spec 50 leaves: build": dict(builders),
        "spec 50 leaves: per query": {k: _per_query(v) for k, v in builders.items()},
        "spec 50 leaves: cold compile": {k: _cold(v) for k, v in builders.items()},
    }


def time_call(fn: Callable[[], Any], *, min_seconds: float) -> float:
    """Seconds per call of ``fn``, looping until ``min_seconds`` elapsed (one warm-up call)."""
    fn()
    n, elapsed = 0, 0.0
    start = time.perf_counter()
    while elapsed < min_seconds:
        for _ in range(10):
            fn()
        n += 10
        elapsed = time.perf_counter() - start
    return elapsed / n


# ---------------------------------------------------------------------------------------------
# harness registration
# ---------------------------------------------------------------------------------------------
_WORKLOADS = {
    "spec.build": ("spec 50 leaves: build", "50-leaf spec: JSON AST -> SQLAlchemy expression"),
    "spec.per_query": (
        "spec 50 leaves: per query",
        "50-leaf spec: build + cache key / compiled-cache lookup (or compile if uncacheable)",
    ),
    "spec.cold_compile": (
        "spec 50 leaves: cold compile",
        "50-leaf spec: build + full compile to PostgreSQL SQL",
    ),
}


def _register(name: str, key: str, description: str) -> None:
    @workload(name, description + " (vs hand-written)", unit="ops/s")
    async def build(ctx: Context) -> list[Variant]:
        fns = variants()[key]
        seconds = max(0.05, 0.5 * min(ctx.scale, 1.0))

        def rate(fn: Callable[[], Any]) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                return 1.0 / time_call(fn, min_seconds=seconds)

            return run

        return [
            Variant("hand-written", rate(fns["hand-written"]), baseline=True),
            Variant("build_sqla_filter", rate(fns["build_sqla_filter"])),
            Variant("build_sqla_filter(dialect=pg)", rate(fns["build_sqla_filter(dialect=pg)"])),
        ]


for _name, (_key, _description) in _WORKLOADS.items():
    _register(_name, _key, _description)
