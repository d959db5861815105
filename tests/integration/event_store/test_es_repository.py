"""Snapshot store and the event-sourced repository on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.snapshots import EveryNEvents, Snapshot
from cqrs_ddd_core import AggregateRoot, DomainEvent, StoredEvent
from cqrs_ddd_core.errors import NotFoundError, WrongExpectedVersionError
from cqrs_ddd_persistence_sqlalchemy.advanced import SQLAlchemySnapshotStore
from cqrs_ddd_persistence_sqlalchemy.core import (
    EventSourcedRepository,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.snapshots import snapshots_table

SF = async_sessionmaker[AsyncSession]


class EsOpened(DomainEvent):
    owner: str


class EsDeposited(DomainEvent):
    amount: int


class EsAccount(AggregateRoot[str]):
    id: str
    owner: str = ""
    balance: int = 0

    @classmethod
    def open(cls, account_id: str, owner: str) -> EsAccount:
        account = cls(id=account_id)
        account.record(EsOpened(owner=owner))
        return account

    def deposit(self, amount: int) -> None:
        self.record(EsDeposited(amount=amount))

    def apply_EsOpened(self, event: EsOpened) -> None:
        self.owner = event.owner

    def apply_EsDeposited(self, event: EsDeposited) -> None:
        self.balance += event.amount


class _CountingStore(SQLAlchemyEventStore):
    """Counts the events stream reads return (what loading an aggregate actually reads)."""

    read = 0

    async def get_events(self, aggregate_id: str, **kw: Any) -> list[StoredEvent]:
        events = await super().get_events(aggregate_id, **kw)
        self.read += len(events)
        return events


@pytest.fixture
def parts(library_tables: AsyncEngine, session_factory: SF) -> tuple[Any, Any, Any]:
    store = _CountingStore(session_factory)
    snaps = SQLAlchemySnapshotStore(session_factory)
    repo = EventSourcedRepository(
        EsAccount, store, snapshot_store=snaps, snapshot_strategy=EveryNEvents(10)
    )
    return store, snaps, repo


async def test_snapshot_upsert_and_retention(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    one = SQLAlchemySnapshotStore(session_factory)
    for version in (5, 5, 10):
        await one.save(Snapshot(aggregate_type="A", aggregate_id="1", version=version, state={}))
    async with session_factory() as s:
        rows = (await s.execute(select(func.count()).select_from(snapshots_table))).scalar_one()
    assert rows == 1  # upsert + keep=1: one row per aggregate, not one per save
    latest = await one.get_latest("A", "1")
    assert latest is not None and latest.version == 10

    two = SQLAlchemySnapshotStore(session_factory, keep=2)
    for version in (1, 2, 3):
        await two.save(
            Snapshot(aggregate_type="B", aggregate_id="1", version=version, state={"v": version})
        )
    await two.save(Snapshot(aggregate_type="B", aggregate_id="1", version=3, state={"v": 33}))
    newest = await two.get_latest("B", "1")
    assert newest is not None and newest.state == {"v": 33}
    older = await two.get_latest("B", "1", max_version=2)
    assert older is not None and older.version == 2
    assert await two.get_latest("B", "1", max_version=1) is None
    assert await two.delete("B", "1") == 2


async def test_uow_factory_is_accepted(library_tables: AsyncEngine, session_factory: SF) -> None:
    store = SQLAlchemySnapshotStore(lambda: SQLAlchemyUnitOfWork(session_factory))
    await store.save(Snapshot(aggregate_type="C", aggregate_id="1", version=1, state={"a": 1}))
    got = await store.get_latest("C", "1")
    assert got is not None and got.state == {"a": 1}


async def test_save_load_round_trip_and_occ(
    parts: tuple[Any, Any, Any], session_factory: SF
) -> None:
    _, _, repo = parts
    account = EsAccount.open("acc-1", "ann")
    account.deposit(5)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await repo.save(account)
        assert account.version == 0  # only after commit
        await uow.commit()
    assert account.version == 2
    loaded = await repo.load("acc-1")
    assert (loaded.owner, loaded.balance, loaded.version) == ("ann", 5, 2)

    stale = await repo.load("acc-1")
    loaded.deposit(1)
    await repo.save(loaded)  # own transaction
    stale.deposit(100)
    with pytest.raises(WrongExpectedVersionError):
        await repo.save(stale)
    assert len(stale.pending_events) == 1  # kept for the caller
    assert (await repo.load("acc-1")).balance == 6
    with pytest.raises(NotFoundError):
        await repo.load("nope")


async def test_snapshot_taken_when_a_save_crosses_n(parts: tuple[Any, Any, Any]) -> None:
    _, snaps, repo = parts
    account = EsAccount.open("acc-2", "bob")
    for _ in range(7):
        account.deposit(1)
    await repo.save(account)  # 0 -> 8: no snapshot
    assert await snaps.get_latest("EsAccount", "acc-2") is None
    for _ in range(4):
        account.deposit(1)
    await repo.save(account)  # 8 -> 12 crosses 10 (a modulo test would miss it)
    snap = await snaps.get_latest("EsAccount", "acc-2")
    assert snap is not None and snap.version == 12 and snap.state["balance"] == 11


async def test_old_schema_snapshot_is_ignored(parts: tuple[Any, Any, Any]) -> None:
    store, snaps, repo = parts
    account = EsAccount.open("acc-3", "cy")
    account.deposit(3)
    await repo.save(account)
    await snaps.save(
        Snapshot(
            aggregate_type="EsAccount",
            aggregate_id="acc-3",
            version=2,
            schema_version=0,
            state={"garbage": True},
        )
    )
    loaded = await repo.load("acc-3")
    assert loaded.balance == 3 and store.read == 2


async def test_load_reads_snapshot_plus_tail_only(
    parts: tuple[Any, Any, Any], session_factory: SF
) -> None:
    store, snaps, repo = parts
    batch = [StoredEvent.from_domain_event(EsOpened(owner="dee", aggregate_id="big"))]
    batch += [
        StoredEvent.from_domain_event(EsDeposited(amount=1, aggregate_id="big"))
        for _ in range(9_999)
    ]
    for start in range(0, len(batch), 2_000):
        await store.append(batch[start : start + 2_000])
    replayed = await repo.load("big")
    assert replayed.balance == 9_999 and replayed.version == 10_000
    await snaps.save(
        Snapshot(
            aggregate_type="EsAccount",
            aggregate_id="big",
            version=9_990,
            state={"id": "big", "owner": "dee", "balance": 9_989},
        )
    )
    store.read = 0
    loaded = await repo.load("big")
    assert store.read == 10  # the snapshot and 10 events, not 10,000
    assert (loaded.balance, loaded.version) == (9_999, 10_000)


async def _latest(snaps: SQLAlchemySnapshotStore, account_id: str) -> int | None:
    snap = await snaps.get_latest("EsAccount", account_id)
    return None if snap is None else snap.version


async def test_snapshots_every_n_events_since_the_last_one_whatever_the_batches(
    parts: tuple[Any, Any, Any],
) -> None:
    _, snaps, repo = parts
    account = EsAccount.open("acc-n", "nia")
    seen: list[tuple[int, int | None]] = []
    for batch in (2, 4, 5, 1, 1, 7, 1, 3, 6):
        for _ in range(batch):
            account.deposit(1)
        await repo.save(account)
        seen.append((account.version, await _latest(snaps, "acc-n")))
    assert seen == [
        (3, None),
        (7, None),
        (12, 12),  # one save of 5 events took the stream past 10 since "no snapshot"
        (13, 12),
        (14, 12),
        (21, 12),  # crosses 20, but only 9 events since the snapshot at 12
        (22, 22),
        (25, 22),
        (31, 22),
    ]
    snap = await snaps.get_latest("EsAccount", "acc-n")
    assert snap is not None and snap.state["balance"] == 21


async def test_snapshot_counting_resumes_from_the_snapshot_a_load_started_from(
    parts: tuple[Any, Any, Any],
) -> None:
    store, snaps, repo = parts
    account = EsAccount.open("acc-l", "lou")
    for _ in range(14):
        account.deposit(1)
    await repo.save(account)  # 0 -> 15 in one save
    assert await _latest(snaps, "acc-l") == 15
    versions: list[tuple[int, int | None]] = []
    for _ in range(11):  # one event per load + save, each load starting from the snapshot
        loaded = await repo.load("acc-l")
        loaded.deposit(1)
        await repo.save(loaded)
        versions.append((loaded.version, await _latest(snaps, "acc-l")))
    # 20 is a multiple of 10 but only 5 events after the snapshot at 15: no snapshot there
    assert versions[4] == (20, 15)
    assert versions[9] == (25, 25) and versions[10] == (26, 25)
    assert [v for v, s in versions if v == s] == [25]
    store.read = 0
    assert (await repo.load("acc-l")).balance == 25 and store.read == 1


async def test_stream_without_snapshots_is_snapshotted_on_its_next_save(
    parts: tuple[Any, Any, Any],
) -> None:
    store, snaps, repo = parts
    batch = [StoredEvent.from_domain_event(EsOpened(owner="ola", aggregate_id="acc-o"))]
    batch += [
        StoredEvent.from_domain_event(EsDeposited(amount=1, aggregate_id="acc-o"))
        for _ in range(24)
    ]
    await store.append(batch)  # written before snapshots were configured
    loaded = await repo.load("acc-o")
    loaded.deposit(1)
    await repo.save(loaded)  # 25 -> 26 crosses no multiple of 10, but 26 events since none
    assert await _latest(snaps, "acc-o") == 26


async def test_a_rolled_back_snapshot_does_not_count(
    parts: tuple[Any, Any, Any], session_factory: SF
) -> None:
    _, snaps, repo = parts
    account = EsAccount.open("acc-r", "rae")
    account.deposit(1)
    await repo.save(account)  # v2
    for _ in range(10):
        account.deposit(1)
    async with SQLAlchemyUnitOfWork(session_factory) as uow:
        await repo.save(account, uow=uow)  # v12, snapshot in the transaction...
        assert await _latest(snaps, "acc-r") == 12
        await uow.rollback()  # ...which is rolled back
    assert account.version == 2 and await _latest(snaps, "acc-r") is None
    for _ in range(10):
        account.deposit(1)
    await repo.save(account)  # v12 for real: 12 events since "no snapshot"
    assert await _latest(snaps, "acc-r") == 12


class _FlakySnapshots(SQLAlchemySnapshotStore):
    fail = True

    async def save(self, snapshot: Snapshot, *, uow: Any = None) -> None:
        if self.fail:
            self.fail = False
            raise RuntimeError("snapshot store down")
        await super().save(snapshot, uow=uow)


async def test_a_failed_snapshot_is_caught_up_on_the_next_save(
    library_tables: AsyncEngine, session_factory: SF
) -> None:
    snaps = _FlakySnapshots(session_factory)
    repo = EventSourcedRepository(
        EsAccount,
        SQLAlchemyEventStore(session_factory),
        snapshot_store=snaps,
        snapshot_strategy=EveryNEvents(10),
    )
    account = EsAccount.open("acc-f", "fay")
    for _ in range(9):
        account.deposit(1)
    await repo.save(account)  # v10: the snapshot fails (logged; the events are committed)
    assert account.version == 10 and await _latest(snaps, "acc-f") is None
    account.deposit(1)
    await repo.save(account)  # v11: still 11 events since the last (missing) snapshot
    assert await _latest(snaps, "acc-f") == 11
