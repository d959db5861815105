"""Load: 50 concurrent tasks for a bounded time, with deliberate optimistic-concurrency conflicts.

Each task repeatedly opens a unit of work (with the event store and the outbox as event sinks),
loads one of a few hot accounts, deposits into it (a domain event), writes an extra outbox
message by hand, and commits; some units of work are rolled back on purpose after all their
writes; some hold the loaded aggregate a moment before saving to provoke conflicts. Losers of a
conflict get ``OptimisticConcurrencyError`` (and nothing else) and retry.

Afterwards, from the database:
- no lost update: every account's balance is the sum of its committed deposits, and its
  version is 1 + the number of committed deposits;
- every committed event is in the log exactly once, with versions 1..n per stream and no event of
  a rolled-back or conflicting unit of work;
- every outbox message of a committed unit of work is present exactly once (domain-event
  messages and the hand-written ones), none of a rolled-back one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from sqlalchemy import Integer, MetaData, String
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.reliability.rel_faults import soak

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import CQRSDDDError, DomainError, OptimisticConcurrencyError
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.core import (
    EventSink,
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.tables.events import events_table
from cqrs_ddd_persistence_sqlalchemy.tables.outbox import outbox_table

TASKS = 50
ACCOUNTS = 6  # few and hot: plenty of conflicts
SECONDS = soak(6.0, 120.0)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RelDeposited(DomainEvent):
    amount: int


class RelAccount(AggregateRoot[str]):
    id: str
    balance: int = 0

    def deposit(self, amount: int) -> RelDeposited:
        self.balance += amount
        return self.add_event(RelDeposited(amount=amount))


class RelAccountModel(VersionMixin, Base):
    __tablename__ = "rel_accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer)


class Saboteur:
    """The last event sink: when armed it fails the commit after the event store and the outbox
    wrote the unit of work's events in its transaction, so the whole transaction rolls back."""

    def __init__(self, armed: bool) -> None:
        self.armed = armed

    async def write_events(self, events: Sequence[DomainEvent], *, uow: object) -> None:
        if self.armed:
            raise DomainError("sabotaged commit")


@dataclass
class Ledger:
    committed: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    extra_messages: set[str] = field(default_factory=set)
    rolled_back: set[str] = field(default_factory=set)
    conflicts: int = 0
    sabotaged: int = 0
    commits: int = 0
    other_errors: list[BaseException] = field(default_factory=list)


async def _worker(
    n: int,
    factory: async_sessionmaker[AsyncSession],
    deadline: float,
    ledger: Ledger,
) -> None:
    rng = random.Random(n)
    repo = SQLAlchemyRepository(RelAccount, RelAccountModel)
    store = SQLAlchemyEventStore(factory, listen=False, notify=False)
    outbox = SQLAlchemyOutboxStorage(factory, notify=False)
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        account_id = f"acc-{rng.randrange(ACCOUNTS)}"
        amount = rng.randint(1, 100)
        rollback = rng.random() < 0.1
        sabotage = not rollback and rng.random() < 0.1
        extra_id = f"x-{n}-{seq}"
        try:
            sinks: list[EventSink] = [store, outbox, Saboteur(sabotage)]
            async with SQLAlchemyUnitOfWork(factory, event_sinks=sinks) as uow:
                account = await repo.get(account_id, uow=uow)
                assert account is not None
                event = account.deposit(amount)
                if rng.random() < 0.3:
                    await asyncio.sleep(rng.uniform(0, 0.02))  # widen the race window
                await repo.add(account, uow=uow)
                await outbox.save_messages(
                    [OutboxMessage(event_type="RelAudit", payload={"a": account_id},
                                   message_id=extra_id)],
                    uow=uow,
                )  # fmt: skip
                if rollback:
                    # every write is done (flushed at commit time): roll back on purpose
                    ledger.rolled_back.update({event.event_id, extra_id})
                    continue  # leaving the block without commit() rolls back
                await uow.commit()
            ledger.committed.setdefault(account_id, []).append((event.event_id, amount))
            ledger.extra_messages.add(extra_id)
            ledger.commits += 1
        except OptimisticConcurrencyError:
            ledger.conflicts += 1
            ledger.rolled_back.update({event.event_id, extra_id})
        except DomainError:
            assert sabotage
            ledger.sabotaged += 1
            ledger.rolled_back.update({event.event_id, extra_id})
        except CQRSDDDError as exc:  # anything else is a failure of the test
            ledger.other_errors.append(exc)
            return


@pytest.mark.slow
async def test_rel_load_50_tasks_with_conflicts(library_tables: AsyncEngine) -> None:
    engine = library_tables
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    repo = SQLAlchemyRepository(RelAccount, RelAccountModel)
    async with SQLAlchemyUnitOfWork(factory) as uow:
        for i in range(ACCOUNTS):
            await repo.add(RelAccount(id=f"acc-{i}"), uow=uow)
        await uow.commit()

    ledger = Ledger()
    deadline = time.monotonic() + SECONDS
    await asyncio.gather(*(_worker(n, factory, deadline, ledger) for n in range(TASKS)))
    assert not ledger.other_errors, ledger.other_errors[:3]
    assert ledger.commits > 0 and ledger.sabotaged > 0
    assert engine.dialect.name == "sqlite" or ledger.conflicts > 0  # SQLite serialises writers

    async with engine.connect() as conn:
        accounts = {
            r.id: (r.balance, r.version)
            for r in await conn.execute(sa.select(RelAccountModel.__table__))
        }
        events = (
            await conn.execute(
                sa.select(
                    events_table.c.event_id, events_table.c.stream_id, events_table.c.version
                ).where(events_table.c.event_type == "RelDeposited")
            )
        ).all()
        messages = Counter(r[0] for r in await conn.execute(sa.select(outbox_table.c.message_id)))

    # no lost update
    for account_id, (balance, version) in accounts.items():
        deposits = ledger.committed.get(account_id, [])
        assert balance == sum(a for _, a in deposits), account_id
        assert version == 1 + len(deposits), account_id
    # every committed event exactly once, contiguous versions, nothing rolled back
    committed_ids = {eid for deps in ledger.committed.values() for eid, _ in deps}
    stored = Counter(r.event_id for r in events)
    assert set(stored) == committed_ids
    assert max(stored.values()) == 1
    assert not set(stored) & ledger.rolled_back
    for account_id, deps in ledger.committed.items():
        versions = sorted(r.version for r in events if r.stream_id == account_id)
        assert versions == list(range(1, len(deps) + 1)), account_id
    # outbox: domain-event messages and extra messages of committed UoWs, exactly once
    assert set(messages) == committed_ids | ledger.extra_messages
    assert max(messages.values()) == 1
    assert not set(messages) & ledger.rolled_back
    print(
        f"load[{engine.dialect.name}]: {TASKS} tasks x {SECONDS}s: {ledger.commits} commits, "
        f"{ledger.conflicts} OCC conflicts, {ledger.sabotaged} commits failed after the sinks "
        f"wrote, {len(ledger.rolled_back) // 2} rolled back in all"
    )
