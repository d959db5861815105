"""Hypothesis fuzzing of the specification JSON form and of ``QueryOptions`` on real databases.

Complements ``specifications/test_spec_hostile.py`` (fixed hostile cases) and
``specifications/test_spec_operator_matrix.py`` (every operator x every column kind x every JSON
value kind, exhaustively) with generated ones: random operators (valid, aliases, garbage), field
names (mapped, JSON paths, dunders, other tables, SQL fragments), values (quotes, backslashes,
LIKE wildcards, NUL, unicode, huge numbers, NaN, nested JSON, big lists), every operator spelling
on every column kind with a value of every JSON kind, and nesting. Every example either

- raises an error from the library's tree (a ``SpecificationError`` at compile time), or
- compiles to SQL with every value bound (no user text inside the SQL string), selecting from the
  mapped table only, and runs on the database without a driver error;

and no example changes any data (both tables are checksummed before and after).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.conftest import pg_dsn, require_postgres
from tests.reliability.rel_faults import soak, tagged_engine

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.errors import SpecificationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.errors import translating
from cqrs_ddd_persistence_sqlalchemy.specifications import (
    apply_query_options,
    build_sqla_filter,
)
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime
from cqrs_ddd_specifications import ALIASES, Condition, Operator, Specification

EXAMPLES = soak(120, 2000)


class Base(DeclarativeBase):
    pass


class FuzzThing(Base):
    __tablename__ = "rel_fuzz_things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(300))
    n: Mapped[int | None] = mapped_column(sa.Integer)
    score: Mapped[float | None] = mapped_column(sa.Float)
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    flag: Mapped[bool | None] = mapped_column(sa.Boolean)
    created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    meta: Mapped[Any] = mapped_column(JSONType(), nullable=True)


secret = sa.Table(
    "rel_fuzz_secret",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("password", sa.String(50)),
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SEED_TEXTS = ["it's", "50%", "a_b", "back\\slash", 'dq"', "ünïcödé", "日本語", "😀", "", " x "]
ROWS = [
    {
        "id": i + 1,
        "name": text,
        "n": i * 7 - 20,
        "score": i / 3,
        "amount": Decimal(i * 125) / 100 - 3,
        "flag": i % 2 == 0,
        "created": T0 + dt.timedelta(hours=i),
        "meta": {"k": text, "n": i, "tags": [text, "t"], "nested": {"a": i}},
    }
    for i, text in enumerate(SEED_TEXTS)
] + [
    {
        "id": 100,
        "name": None,
        "n": None,
        "score": None,
        "amount": None,
        "flag": None,
        "created": None,
        "meta": None,
    }
]

FIELDS = [
    "id",
    "name",
    "n",
    "score",
    "amount",
    "flag",
    "created",
    "meta",
    "meta.k",
    "meta.n",
    "meta.tags",
]
HOSTILE_TEXT = [
    "'",
    "''",
    '"',
    "\\",
    "%",
    "_",
    "%_\\'",
    "'; DROP TABLE rel_fuzz_secret; --",
    "1 OR 1=1",
    "' OR '1'='1",
    "$1",
    ":name",
    "%(name)s",
    "?",
    "*/ SELECT 1 /*",
    "\x00",
    "a\x00b",
    "\ud800",
    "\u202e",
    "日本語",
    "😀",
    "e\u0301",
]
HOSTILE_FIELDS = [
    "password",
    "rel_fuzz_secret.password",
    "rel_fuzz_secret",
    "__class__",
    "__table__",
    "metadata",
    "_sa_instance_state",
    "registry",
    "id; DROP TABLE rel_fuzz_secret",
    "name--",
    'name"',
    "meta.'",
    "meta.a'b",
    'meta.a"b',
    "meta.a\\b",
    "meta..k",
    "meta.",
    ".name",
    "meta.k.0.x",
    "meta.tags.0",
    "meta.%",
    "",
    " ",
    "NAME",
    "n)",
    "pg_sleep(10)",
]
OPS = [*sorted({*(op.value for op in Operator), *ALIASES}), "", "==", "eq ", "EQ", "drop", "=;"]

_scalar_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT + SEED_TEXTS),
    st.text(max_size=40),
    st.builds(lambda: "x'%_" * 1500),  # built lazily: a 6 kB literal would bloat reprs
)
_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _scalar_text,
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(_scalar_text, st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
)
_values = st.one_of(
    _json,
    st.builds(lambda: list(range(5000))),
    st.sampled_from(
        [
            T0,
            T0.isoformat(),
            dt.datetime(2026, 1, 1),  # naive
            uuid.UUID(int=1),
            b"bytes",
            math.nan,
            math.inf,
            ["x"] * 3,
            [1, "a", None],
            [None, None],
            {"a": {"b": [1, {"c": "'"}]}},
        ]
    ),
)
_fields = st.one_of(st.sampled_from(FIELDS), st.sampled_from(HOSTILE_FIELDS), st.text(max_size=20))
_ops = st.one_of(st.sampled_from(OPS), st.text(max_size=8), st.integers(), st.none())


_clean_text = st.one_of(
    st.sampled_from(
        [t for t in HOSTILE_TEXT + SEED_TEXTS if "\x00" not in t and "\ud800" not in t]
    ),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20),
)
_int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_times = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC), min_value=dt.datetime(1, 1, 2)),
    st.sampled_from([T0, T0.isoformat(), "2026-01-01", "2026-01-01T00:00:00+02:00"]),
)
_doc_keys = st.one_of(_clean_text, st.sampled_from(["k", "n", "tags", "nested", "a"]))
_docs = st.recursive(
    st.one_of(st.none(), st.booleans(), _int32, _clean_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_doc_keys, inner, max_size=3)
    ),
    max_leaves=6,
)


def _typed(fields: list[str], ops: list[str], values: st.SearchStrategy[Any]) -> Any:
    return st.fixed_dictionaries(
        {"op": st.sampled_from(ops), "attr": st.sampled_from(fields), "val": values}
    )


_CMP = ["=", "!=", ">", "<", ">=", "<=", "eq", "ne", "gt", "lte"]
_typed_leaves = st.one_of(
    _typed(
        ["name", "meta.k"],
        [
            "=",
            "!=",
            "contains",
            "icontains",
            "startswith",
            "iendswith",
            "endswith",
            "like",
            "ilike",
            "not_like",
            "istartswith",
        ],
        _clean_text,
    ),
    _typed(["name", "meta.k"], ["in", "not_in", "all"], st.lists(_clean_text, max_size=5)),
    _typed(["name"], ["regex", "iregex"], st.sampled_from(["^a", "x$", "[']", "\\\\", ".*"])),
    _typed(["n", "id", "meta.n"], _CMP, _int32),
    _typed(["n", "id"], _CMP, st.integers(min_value=-(2**70), max_value=2**70)),
    _typed(["n", "id"], ["in", "not_in"], st.lists(_int32, max_size=5)),
    _typed(["n"], ["between", "not_between"], st.lists(_int32, min_size=2, max_size=2)),
    _typed(["score"], _CMP, st.floats(allow_nan=False, allow_infinity=False, width=32)),
    _typed(["flag"], ["=", "!="], st.booleans()),
    _typed(
        ["created"],
        [">", "<", ">=", "between"],
        st.one_of(_times, st.lists(_times, min_size=2, max_size=2)),
    ),
    _typed(["meta", "meta.tags", "meta.nested"], ["@>", "json_contains", "<@"], _docs),
    _typed(["meta", "meta.nested"], ["?", "json_has_key"], _clean_text),
    _typed(
        ["meta"], ["?|", "?&", "json_has_any", "json_has_all"], st.lists(_clean_text, max_size=4)
    ),
    _typed(FIELDS, ["is_null", "is_not_null", "is_empty"], st.booleans()),
    _typed(HOSTILE_FIELDS, ["=", "contains", "@>", "in"], _clean_text),
)


#: every operator spelling x every column kind x a value of every JSON kind (null, bool, int,
#: float, str, list, dict), the values drawn so that each operator meets values it accepts
_value_kinds = st.one_of(
    st.none(),
    st.booleans(),
    _int32,
    st.floats(allow_nan=False, allow_infinity=False),
    _clean_text,
    st.sampled_from(["2026-01-01T00:00:00+00:00", "$.k", "$.tags[0]", "POINT(0 0)", "a b"]),
    st.lists(st.one_of(st.none(), st.booleans(), _int32, _clean_text), max_size=3),
    _docs,
    st.sampled_from(
        [{"geometry": "POINT(0 0)", "distance": 1}, {"type": "Point", "coordinates": [0, 0]}]
    ),
)
_every_operator_leaves = st.fixed_dictionaries(
    {
        "op": st.sampled_from(sorted({*(op.value for op in Operator), *ALIASES})),
        "attr": st.sampled_from(FIELDS),
        "val": _value_kinds,
    }
)


def _leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        _typed_leaves,
        _typed_leaves,
        _every_operator_leaves,
        _every_operator_leaves,
        st.fixed_dictionaries({"op": _ops, "attr": _fields, "val": _values}),
        st.fixed_dictionaries({"op": st.sampled_from(OPS), "attr": st.sampled_from(FIELDS)}),
        st.dictionaries(st.sampled_from(["op", "attr", "val", "x", "conditions"]), _json),
        _json_scalar,
    )


_specs = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["and", "or", "AND", "Or"]),
                "conditions": st.lists(inner, min_size=1, max_size=4),
            }
        ),
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["and", "or", "not", "nand"]),
                "conditions": st.lists(inner, max_size=3),
            }
        ),
        st.fixed_dictionaries({"op": st.just("not"), "condition": inner}),
    ),
    max_leaves=12,
)

_counts = st.one_of(
    st.integers(min_value=0, max_value=50),
    st.none(),
    st.integers(min_value=-5, max_value=2**70),
    st.sampled_from(["1", 1.5, True]),
)
_order = st.one_of(
    st.sampled_from(["id", "-id", "name", "-n", "+score", "-amount", "created", "-flag"]),
    _fields,
    _fields.map(lambda f: f"-{f}"),
)
_options = st.fixed_dictionaries(
    {},
    optional={
        "order_by": st.one_of(st.lists(_order, max_size=3), _order),
        "limit": _counts,
        "offset": _counts,
        "cursor": st.one_of(
            st.text(max_size=30),
            st.binary(max_size=40).map(
                lambda b: __import__("base64").urlsafe_b64encode(b).decode()
            ),
        ),
        "select_fields": st.lists(st.one_of(st.sampled_from(FIELDS[:6]), _fields), max_size=3),
        "distinct": st.one_of(st.booleans(), st.sampled_from([1, "yes"])),
        "group_by": st.lists(st.one_of(st.sampled_from(FIELDS[:6]), _fields), max_size=2),
        "x": st.just(1),
    },
)


# -- a synchronous harness (hypothesis drives sync test functions) ----------------------------


class Db:
    def __init__(self, runner: asyncio.Runner, engine: AsyncEngine, dialect: str) -> None:
        self.runner, self.engine, self.dialect = runner, engine, dialect

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def select(self, stmt: sa.Select[Any]) -> list[Any]:
        async def go() -> list[Any]:
            with translating():
                async with self.engine.connect() as conn:
                    return list((await conn.execute(stmt)).all())

        result: list[Any] = self.run(go())
        return result

    def checksum(self) -> tuple[Any, ...]:
        async def go() -> tuple[Any, ...]:
            async with self.engine.connect() as conn:
                things = (
                    await conn.execute(sa.select(FuzzThing.__table__).order_by(FuzzThing.id))
                ).all()
                secrets = (await conn.execute(sa.select(secret).order_by(secret.c.id))).all()
                tables = sorted(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            return (tuple(map(tuple, things)), tuple(map(tuple, secrets)), tuple(tables))

        result: tuple[Any, ...] = self.run(go())
        return result


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    with asyncio.Runner() as runner:
        schema = None
        if request.param == "sqlite":
            path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
            engine = create_engine(f"sqlite+aiosqlite:///{path}")
        else:
            require_postgres()
            schema = f"rel_fuzz_{uuid.uuid4().hex[:10]}"

            async def create() -> None:
                conn = await asyncpg.connect(pg_dsn())
                await conn.execute(f'CREATE SCHEMA "{schema}"')
                await conn.close()

            runner.run(create())
            engine = tagged_engine(schema, "rel-fuzz")

        async def setup() -> None:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.execute(sa.insert(FuzzThing), ROWS)
                await conn.execute(sa.insert(secret), [{"id": 1, "password": "hunter2"}])

        try:
            runner.run(setup())
            yield Db(runner, engine, request.param)
        finally:
            runner.run(engine.dispose())
            if schema is not None:

                async def drop() -> None:
                    conn = await asyncpg.connect(pg_dsn())
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    await conn.close()

                runner.run(drop())


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in ("val", "value", "conditions", "condition"):
                yield from _strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings_in(v)


def _check_compiled(db: Db, stmt: sa.Select[Any], data: Any) -> None:
    sql = str(stmt.compile(dialect=db.engine.dialect))
    assert "rel_fuzz_secret" not in sql, sql
    assert "password" not in sql, sql
    # Every value travels as a bound parameter: no distinctive user text inside the SQL.
    for text in _strings_in(data):
        if len(text) >= 6 and any(c in text for c in "'\";\\%") and text.strip():
            assert text not in sql, (text, sql)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def test_rel_spec_json_fuzz(db: Db) -> None:
    before = db.checksum()
    outcomes = {"error": 0, "ran": 0}

    @FUZZ
    @given(data=_specs)
    def check(data: Any) -> None:
        try:
            clause = build_sqla_filter(FuzzThing, data)
        except SpecificationError:
            outcomes["error"] += 1
            return
        stmt = sa.select(FuzzThing.id).where(clause)
        _check_compiled(db, stmt, data)
        ids = {r[0] for r in db.select(stmt)}  # a driver error here fails the test
        assert ids <= {r["id"] for r in ROWS}
        outcomes["ran"] += 1

    check()
    assert db.checksum() == before
    assert outcomes["error"] > 0 and outcomes["ran"] > 0, outcomes


def test_rel_query_options_fuzz(db: Db) -> None:
    before = db.checksum()
    outcomes = {"error": 0, "ran": 0}

    @FUZZ
    @given(options=_options, spec=st.one_of(st.none(), _specs))
    def check(options: Any, spec: Any) -> None:
        try:
            stmt = sa.select(FuzzThing)
            if spec is not None:
                stmt = stmt.where(build_sqla_filter(FuzzThing, spec))
            stmt = apply_query_options(stmt, FuzzThing, options)
        except SpecificationError:
            outcomes["error"] += 1
            return
        _check_compiled(db, stmt, {"val": list(options.values())})
        db.select(stmt)  # a driver error here fails the test
        outcomes["ran"] += 1

    check()
    assert db.checksum() == before
    assert outcomes["error"] > 0 and outcomes["ran"] > 0, outcomes


_needles = st.one_of(
    st.sampled_from(HOSTILE_TEXT + SEED_TEXTS),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
)


def test_rel_hostile_text_matches_literally(db: Db) -> None:
    """Whatever text is searched for, the database agrees with the in-memory evaluator."""

    @FUZZ
    @given(needle=_needles, op=st.sampled_from(["=", "!=", "contains", "startswith", "endswith"]))
    def check(needle: str, op: str) -> None:
        try:
            spec: Specification = Condition("name", op, needle)
            clause = build_sqla_filter(FuzzThing, spec)
        except SpecificationError:
            assert "\x00" in needle or any("\ud800" <= c <= "\udfff" for c in needle)
            return
        got = {r[0] for r in db.select(sa.select(FuzzThing.id).where(clause))}
        expected = {r["id"] for r in ROWS if spec.is_satisfied_by(r)}
        assert got == expected, (needle, op)

    check()


@pytest.mark.parametrize(
    "options",
    [
        {"group_by": ["flag"]},
        {"group_by": ["flag"], "select_fields": ["flag", "n"]},
        {"group_by": ["flag"], "select_fields": ["flag"], "order_by": ["n"]},
        {"group_by": ["flag"], "select_fields": ["flag"], "limit": 2},
        {"group_by": ["flag"], "select_fields": ["flag"], "order_by": ["-flag"], "limit": 2},
        {"distinct": True, "select_fields": ["name"], "order_by": ["n"]},
        {"distinct": True, "select_fields": ["name"], "limit": 3},
        {"distinct": True, "order_by": ["n"], "limit": 3},
        {"select_fields": ["name"], "order_by": ["-n"], "limit": 3, "offset": 2},
        {"limit": 2**63},
        {"offset": 2**63},
        {"limit": 2**70},
    ],
)
def test_rel_query_option_shapes_are_valid_sql_or_refused(db: Db, options: dict[str, Any]) -> None:
    """Grouping/distinct/paging combinations: a SpecificationError or valid SQL, never a
    driver error (GROUP BY / DISTINCT rules are stricter on PostgreSQL than on SQLite)."""
    try:
        stmt = apply_query_options(sa.select(FuzzThing), FuzzThing, options)
    except SpecificationError:
        return
    db.select(stmt)


@pytest.mark.parametrize(
    "data",
    [
        {"op": ">=", "attr": "created", "val": "2026-01-01"},  # date only: naive
        {"op": "<", "attr": "created", "val": "2026-01-01T10:00:00"},
        {"op": "between", "attr": "created", "val": [T0.replace(tzinfo=None), T0]},
        {"op": "like", "attr": "name", "val": "\\"},
        {"op": "not_like", "attr": "name", "val": "abc\\"},
        {"op": "ilike", "attr": "name", "val": "\\\\\\"},
    ],
)
def test_rel_spec_values_refused_at_compile_not_at_execution(db: Db, data: dict[str, Any]) -> None:
    with pytest.raises(SpecificationError):
        build_sqla_filter(FuzzThing, data)


def test_rel_spec_valid_escapes_and_aware_times_still_work(db: Db) -> None:
    for data, expected in [
        ({"op": "like", "attr": "name", "val": "back\\\\%"}, {4}),
        ({"op": "like", "attr": "name", "val": "50\\%"}, {2}),
        ({"op": ">=", "attr": "created", "val": "2026-01-01T08:00:00+00:00"}, {9, 10}),
    ]:
        stmt = sa.select(FuzzThing.id).where(build_sqla_filter(FuzzThing, data))
        assert {r[0] for r in db.select(stmt)} == expected, data


# -- the same through the repository (the user-facing path: search, count, first) ------------


class RelFuzzAccount(AggregateRoot[int]):
    id: int
    name: str | None = None
    n: int | None = None
    score: float | None = None
    amount: Decimal | None = None
    flag: bool | None = None
    created: dt.datetime | None = None
    meta: Any = None


def test_rel_repository_search_fuzz(db: Db) -> None:
    repo = SQLAlchemyRepository(RelFuzzAccount, FuzzThing)
    before = db.checksum()
    outcomes = {"error": 0, "ran": 0}

    @FUZZ
    @given(spec=st.one_of(st.none(), _specs), options=st.one_of(st.none(), _options))
    def check(spec: Any, options: Any) -> None:
        async def go() -> None:
            async with SQLAlchemyUnitOfWork(async_sessionmaker(db.engine)) as uow:
                if spec is None:
                    result = repo.search(options, uow=uow)
                else:
                    result = repo.search(spec, options, uow=uow)
                found = await result
                assert {a.id for a in found} <= {r["id"] for r in ROWS}
                if options is None or not options.get("select_fields"):
                    await repo.search(spec, uow=uow).count()
                    await repo.search(spec, uow=uow).first()

        try:
            db.run(go())
        except SpecificationError:
            outcomes["error"] += 1
            return
        outcomes["ran"] += 1  # any other error (a PersistenceError from the driver) fails

    check()
    assert db.checksum() == before
    assert outcomes["error"] > 0 and outcomes["ran"] > 0, outcomes
