"""DurableQueue on SQLite and PostgreSQL: claim, lease expiry, fencing, retry, dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_core.errors import ConfigurationError, LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.queue import (
    DEAD,
    DONE,
    Backoff,
    DurableQueue,
    queue_columns,
    queue_indexes,
)
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_table() -> Table:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    return Table(
        "work_items",
        md,
        *queue_columns(key_column="group_key"),
        Column("name", String(50), nullable=False),
        *queue_indexes("work_items", key_column="group_key"),
    )


@pytest.fixture
async def table(engine: AsyncEngine) -> Table:
    t = make_table()
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.create_all)
    return t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_queue(table: Table, engine: AsyncEngine, clock: Clock, **kw: object) -> DurableQueue:
    kw.setdefault("lease_seconds", 10)
    kw.setdefault("max_attempts", 3)
    kw.setdefault("backoff", Backoff(base=2.0, factor=2.0, maximum=60, jitter=0.0))
    return DurableQueue(table, engine, clock=clock, **kw)  # type: ignore[arg-type]


async def test_claim_leases_and_ack_finishes(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": f"n{i}"} for i in range(5)])
    first = await q.claim(3)
    assert [c["name"] for c in first] == ["n0", "n1", "n2"]
    assert len({c.token for c in first}) == 1
    second = await q.claim(10)
    assert [c["name"] for c in second] == ["n3", "n4"]
    assert await q.claim(10) == []
    outcome = await q.complete(first)
    assert outcome.done == tuple(c.id for c in first) and not outcome.lost
    stats = await q.stats()
    assert (stats.pending, stats.leased, stats.done) == (2, 2, 3)


async def test_expired_lease_is_reclaimed_and_old_token_is_fenced(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": "a"}])
    [old] = await q.claim(1)
    clock.advance(9)
    assert await q.claim(1) == []
    clock.advance(2)
    [new] = await q.claim(1)
    assert new.id == old.id and new.token != old.token
    lost = await q.complete([old])
    assert lost.lost == (old.id,) and not lost.done
    with pytest.raises(LeaseLostError):
        lost.raise_if_lost()
    assert (await q.fail([old], error="x")).lost == (old.id,)
    assert (await q.heartbeat([old])).lost == (old.id,)
    assert (await q.release([old])).lost == (old.id,)
    assert (await q.complete([new])).done == (new.id,)


async def test_heartbeat_extends_the_lease(table: Table, engine: AsyncEngine, clock: Clock) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": "a"}])
    [claim] = await q.claim(1)
    clock.advance(8)
    assert (await q.heartbeat([claim], lease_seconds=20)).extended == (claim.id,)
    clock.advance(15)
    assert await q.claim(1) == []
    clock.advance(6)
    assert len(await q.claim(1)) == 1


async def test_nack_backs_off_then_dead_letters_then_requeue(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": "poison"}])
    [c1] = await q.claim(1)
    assert (await q.fail([c1], error="e1")).retried == (c1.id,)
    assert await q.claim(1) == []  # not immediately
    clock.advance(1.9)
    assert await q.claim(1) == []
    clock.advance(0.2)  # first delay: 2s
    [c2] = await q.claim(1)
    assert c2.attempts == 1
    await q.fail([c2], error="e2")
    clock.advance(3.9)
    assert await q.claim(1) == []  # second delay: 4s
    clock.advance(0.2)
    [c3] = await q.claim(1)
    outcome = await q.fail([c3], error="e3")
    assert outcome.dead == (c3.id,)
    clock.advance(3600)
    assert await q.claim(1) == []
    [dead] = await q.dead_letters()
    assert dead["status"] == DEAD and dead["attempts"] == 3 and dead["last_error"] == "e3"
    assert (await q.stats()).dead == 1
    assert await q.requeue() == 1
    [again] = await q.claim(1)
    assert again.attempts == 0 and again.id == c1.id


async def test_dead_letter_explicitly_and_requeue_by_id(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": "a"}, {"name": "b"}])
    a, b = await q.claim(2)
    await q.fail([a, b], error="unknown type", retry=False)
    assert [r["name"] for r in await q.dead_letters()] == ["a", "b"]
    assert await q.requeue([b.id]) == 1
    assert [c["name"] for c in await q.claim(5)] == ["b"]


async def test_release_gives_rows_back_without_counting(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": "a"}])
    claims = await q.claim(1)
    await q.release(claims)
    [again] = await q.claim(1)
    assert again.attempts == 0


async def test_purge_deletes_old_done_rows_only(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": n} for n in "abc"])
    a, b, _c = await q.claim(3)
    await q.complete([a])
    await q.fail([b], error="x", retry=False)
    clock.advance(100)
    assert await q.purge(timedelta(seconds=50)) == 1
    stats = await q.stats()
    assert (stats.done, stats.dead, stats.pending) == (0, 1, 1)
    with pytest.raises(ConfigurationError):
        await q.purge(timedelta(0), statuses=("pending",))
    with pytest.raises(ConfigurationError):  # written into the SQL: only the known ones
        await q.purge(timedelta(0), statuses=("done'; DROP TABLE x; --",))
    assert (await q.stats()).dead == 1


async def test_per_key_ordering_only_head_is_claimable(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock, key_column="group_key")
    await q.enqueue(
        [{"name": f"{k}{i}", "group_key": k} for i in range(3) for k in "xy"]
        + [{"name": "free", "group_key": None}]
    )
    first = await q.claim(10)
    assert sorted(c["name"] for c in first) == ["free", "x0", "y0"]
    assert await q.claim(10) == []
    x0 = next(c for c in first if c["name"] == "x0")
    await q.fail([x0], error="retry")  # a backing-off head still blocks its key
    await q.complete([c for c in first if c is not x0])
    assert [c["name"] for c in await q.claim(10)] == ["y1"]
    clock.advance(5)
    assert [c["name"] for c in await q.claim(10)] == ["x0"]


async def test_claim_where_and_ack_inside_a_unit_of_work(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": "a"}, {"name": "b"}])
    [b] = await q.claim(5, where=table.c.name == "b")
    assert b["name"] == "b"
    sf = async_sessionmaker(engine, expire_on_commit=False)
    async with SQLAlchemyUnitOfWork(sf) as uow:
        await q.complete([b], uow=uow)
        await uow.rollback()  # the ack rolls back with the caller's transaction
    assert (await q.stats()).done == 0
    async with SQLAlchemyUnitOfWork(sf) as uow:
        await q.complete([b])  # ambient unit of work
        await uow.commit()
    async with engine.connect() as conn:
        status = (await conn.execute(select(table.c.status).where(table.c.id == b.id))).scalar()
    assert status == DONE


async def test_idempotent_enqueue(table: Table, engine: AsyncEngine, clock: Clock) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"id": 7, "name": "a"}])
    await q.enqueue([{"id": 7, "name": "a"}, {"id": 8, "name": "b"}], ignore_conflicts_on=["id"])
    assert (await q.stats()).pending == 2


async def test_enqueue_columns_writes_what_enqueue_writes(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    with pytest.raises(ConfigurationError):  # lists of different lengths: nothing written
        await q.enqueue_columns({"name": ["a", "b"], "group_key": ["g"]})
    await q.enqueue_columns({"name": ["a", "b", "c"], "group_key": ["g", None, "g"]})
    await q.enqueue_columns({"name": ["d"], "group_key": [None]})  # one row
    await q.enqueue_columns({"name": [], "group_key": []})  # nothing
    await q.enqueue_columns(
        {"id": [1, 9], "name": ["dup", "e"], "group_key": [None, None]},
        ignore_conflicts_on=["id"],
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table.c.name, table.c.status).order_by("id"))).all()
    assert [tuple(r) for r in rows] == [(name, "pending") for name in ("a", "b", "c", "d", "e")]
    claimed = await q.claim(10)
    assert [c["name"] for c in claimed] == ["a", "b", "c", "d", "e"]


async def test_concurrent_claimers_never_share(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": f"n{i}"} for i in range(300)])

    async def worker() -> list[int]:
        got: list[int] = []
        while batch := await q.claim(7):
            got.extend(c.id for c in batch)
            assert not (await q.complete(batch)).lost
        return got

    results = await asyncio.gather(*(worker() for _ in range(6)))
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 300


def test_rejects_a_table_without_queue_columns() -> None:
    t = Table("nope", MetaData(), Column("id", String(10), primary_key=True))
    with pytest.raises(ConfigurationError, match="queue_columns"):
        DurableQueue(t)


async def test_pinned_worker_uses_one_connection(
    table: Table, engine: AsyncEngine, clock: Clock
) -> None:
    q = make_queue(table, engine, clock)
    await q.enqueue([{"name": f"n{i}"} for i in range(6)])
    checkouts: list[int] = []
    async with q.pinned():
        for _ in range(3):
            batch = await q.claim(2)
            checkouts.append(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]
            assert (await q.complete(batch)).done == tuple(c.id for c in batch)
            checkouts.append(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]
        with q.unpinned():
            assert (await q.stats()).done == 6
    assert checkouts == [1] * 6
    assert (await q.stats()).done == 6


async def test_claims_come_back_in_the_claim_order_descending_columns_included(
    engine: AsyncEngine, clock: Clock
) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    t = Table(
        "ordered_items",
        md,
        *queue_columns(),
        Column("name", String(50), nullable=False),
        Column("rank", Integer(), nullable=False),
        Column("lane", String(10), nullable=True),
        *queue_indexes("ordered_items"),
    )
    async with engine.begin() as conn:
        await conn.run_sync(md.create_all)
    rows = [
        {"name": "a", "rank": 1, "lane": "x"},
        {"name": "b", "rank": 5, "lane": None},
        {"name": "c", "rank": 3, "lane": "y"},
        {"name": "d", "rank": 5, "lane": "x"},
        {"name": "e", "rank": 3, "lane": None},
        {"name": "f", "rank": 1, "lane": "y"},
    ]
    by_rank = make_queue(t, engine, clock, order_by=(t.c.rank.desc(), t.c.id))
    await by_rank.enqueue(rows)
    assert [c["name"] for c in await by_rank.claim(6)] == ["b", "d", "c", "e", "a", "f"]

    by_lane = make_queue(t, engine, clock, order_by=(t.c.lane, t.c.rank.desc(), t.c.id))
    clock.advance(60)  # the first leases expired: everything is claimable again
    # NULLs last when ascending, as PostgreSQL sorts them
    assert [c["name"] for c in await by_lane.claim(6)] == ["d", "a", "c", "f", "b", "e"]

    by_id_desc = make_queue(t, engine, clock, order_by=(t.c.id.desc(),))
    clock.advance(60)
    assert [c["name"] for c in await by_id_desc.claim(6)] == ["f", "e", "d", "c", "b", "a"]
