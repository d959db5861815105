"""Property test of ``SpecificationBuilder``: random builder programs against a reference.

A program is a sequence of builder calls (``where`` / ``and_where`` / ``or_where`` /
``and_group`` / ``or_group`` / ``not_group`` / ``end_group``, nested, sometimes unbalanced or with
empty / over-full groups) ending in ``build()``. The reference interpreter below reads the same
program with the documented rules and evaluates it straight to booleans over plain dicts - it
never builds a specification. For every program:

- the builder raises ``InvalidSpecificationError`` exactly when the reference finds it invalid;
- otherwise the built specification's in-memory evaluation equals the reference on every row,
- and the SQL result (SQLite and PostgreSQL, the ``engine`` fixture) equals the in-memory one.

Hypothesis drives synchronous code, so it runs in a worker thread and hands each query to the
test's event loop. ``CQRS_SOAK=1`` runs many more programs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_specifications import Specification, SpecificationBuilder, evaluate

EXAMPLES = 2000 if os.environ.get("CQRS_SOAK") == "1" else 150


class Base(DeclarativeBase):
    pass


class BuilderRow(Base):
    __tablename__ = "spec_builder_rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str | None] = mapped_column(sa.String(20))
    total: Mapped[int | None] = mapped_column(sa.Integer)
    flag: Mapped[bool | None] = mapped_column(sa.Boolean)


STATUSES = ["active", "shipped", "cancelled", "", None]
ROWS: list[dict[str, Any]] = [
    {
        "id": i + 1,
        "status": STATUSES[i % len(STATUSES)],
        "total": [None, 0, 50, 100, 101, 150, -5][i % 7],
        "flag": [True, False, None][i % 3],
    }
    for i in range(21)
]

# -- the reference: a tiny evaluator over dicts and an interpreter of builder programs --------

Leaf = tuple[str, str, Any]  # (field, operator spelling, value)
Step = tuple[Any, ...]  # ("where", leaf) / ("or_group",) / ("end_group",) ...


def reference_leaf(row: dict[str, Any], leaf: Leaf) -> bool:
    field, op, value = leaf
    current = row[field]
    if op == "is_null":
        return current is None
    if op == "ne":  # documented two-valued negation: NULL rows match
        return current is None or current != value
    if current is None:
        return False
    if op == "eq":
        return bool(current == value)
    if op == "gt":
        return bool(current > value)
    if op == "lte":
        return bool(current <= value)
    if op == "in":
        return current in value
    if op == "startswith":
        return str(current).startswith(value)
    raise AssertionError(op)


def _combine(kind: str, members: list[tuple[str, list[bool]]]) -> list[bool] | None:
    """A group's value per row: OR of runs of AND-ed members (AND binds tighter), negated for a
    not-group; None when the group is invalid (empty, or a not-group without exactly one)."""
    if not members or (kind == "not" and len(members) != 1):
        return None
    values = []
    for index in range(len(ROWS)):
        result, run = False, members[0][1][index]
        for join, vector in members[1:]:
            if join == "or":
                result, run = result or run, vector[index]
            else:
                run = run and vector[index]
        result = result or run
        values.append(not result if kind == "not" else result)
    return values


def reference(program: Sequence[Step]) -> set[int] | None:
    """The ids the program's specification selects, or None when the builder must refuse it."""
    stack: list[tuple[str, list[tuple[str, list[bool]]]]] = [("top", [])]
    for step in program:
        name = step[0]
        kind, members = stack[-1]
        if name in ("where", "and_where", "or_where"):
            join = {"where": "or" if kind == "or" else "and", "and_where": "and"}.get(name, "or")
            members.append((join, [reference_leaf(row, step[1]) for row in ROWS]))
        elif name == "end_group":
            if len(stack) == 1:
                return None
            stack.pop()
            value = _combine(kind, members)
            if value is None:
                return None
            outer_kind, outer = stack[-1]
            outer.append(("or" if outer_kind == "or" else "and", value))
        else:
            stack.append((name.removesuffix("_group"), []))
    if len(stack) != 1:
        return None
    final = _combine("and", stack[0][1])
    if final is None:
        return None
    return {row["id"] for row, hit in zip(ROWS, final, strict=True) if hit}


def run_builder(program: Sequence[Step]) -> Specification:
    builder = SpecificationBuilder()
    for step in program:
        method = getattr(builder, step[0])
        if len(step) > 1:
            field, op, value = step[1]
            method(field, op, value)
        else:
            method()
    return builder.build()


# -- programs ----------------------------------------------------------------------------------

_leaves: st.SearchStrategy[Leaf] = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(["eq", "ne"]), st.sampled_from(STATUSES[:4])),
    st.tuples(st.just("status"), st.just("in"), st.lists(st.sampled_from(STATUSES[:4]))),
    st.tuples(st.just("status"), st.just("startswith"), st.sampled_from(["a", "s", "c", ""])),
    st.tuples(st.sampled_from(["status", "total", "flag"]), st.just("is_null"), st.just(True)),
    st.tuples(
        st.just("total"), st.sampled_from(["eq", "ne", "gt", "lte"]), st.sampled_from([0, 50, 100])
    ),
    st.tuples(st.just("flag"), st.sampled_from(["eq", "ne"]), st.booleans()),
)
_member = st.tuples(st.sampled_from(["where", "and_where", "or_where"]), _leaves)


def _groups(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(
            st.sampled_from(["and_group", "or_group"]), st.lists(inner, min_size=1, max_size=4)
        ),
        st.tuples(st.just("not_group"), st.lists(inner, min_size=1, max_size=1)),
        # sometimes invalid: an empty group, or a not-group of several members
        st.tuples(
            st.sampled_from(["and_group", "or_group", "not_group"]), st.lists(inner, max_size=3)
        ),
    )


_trees = st.recursive(_member, _groups, max_leaves=10)


def _steps(tree: Any) -> list[Step]:
    if tree[0] in ("where", "and_where", "or_where"):
        return [tree]
    opener, members = tree
    return [(opener,), *[step for member in members for step in _steps(member)], ("end_group",)]


@st.composite
def programs(draw: st.DrawFn) -> list[Step]:
    steps = [step for tree in draw(st.lists(_trees, max_size=5)) for step in _steps(tree)]
    if steps and draw(st.integers(0, 9)) == 0:  # sometimes unbalanced: drop or add an end_group
        ends = [i for i, step in enumerate(steps) if step[0] == "end_group"]
        if ends and draw(st.booleans()):
            del steps[draw(st.sampled_from(ends))]
        else:
            steps.insert(draw(st.integers(0, len(steps))), ("end_group",))
    return steps


# -- the test ----------------------------------------------------------------------------------


async def test_spec_builder_programs_match_reference_memory_and_sql(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(sa.insert(BuilderRow), ROWS)
    loop = asyncio.get_running_loop()
    dialect = engine.dialect.name
    outcomes = {"refused": 0, "built": 0}

    async def select_ids(spec: Specification) -> set[int]:
        clause = build_sqla_filter(BuilderRow, spec, dialect=dialect)
        async with engine.connect() as conn:
            return set((await conn.execute(sa.select(BuilderRow.id).where(clause))).scalars())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(program=programs())
    def check(program: list[Step]) -> None:
        expected = reference(program)
        if expected is None:
            try:
                run_builder(program)
            except InvalidSpecificationError:
                outcomes["refused"] += 1
                return
            raise AssertionError(f"the builder accepted an invalid program: {program}")
        spec = run_builder(program)
        in_memory = {row["id"] for row in ROWS if evaluate(spec, row)}
        assert in_memory == expected, (program, spec.to_dict())
        sql = asyncio.run_coroutine_threadsafe(select_ids(spec), loop).result(timeout=60)
        assert sql == in_memory, (program, spec.to_dict())
        outcomes["built"] += 1

    await asyncio.to_thread(check)
    assert outcomes["refused"] > 0 and outcomes["built"] > 0, outcomes
