"""The unit of work's transactional path: the seed's pattern against raw drivers and
hand-written SQLAlchemy, in the same run.

- ``uow.append_1``: one event per transaction, ``async with SQLAlchemyUnitOfWork(sf) as uow:``
  ``SQLAlchemyEventStore(uow.session).append(event)`` ``await uow.commit()`` (the store built
  per call, as in the seed); the same with one shared store and ``uow=uow``; the store outside
  a unit of work (autocommit); hand-written SQLAlchemy (``async with session.begin():
  session.execute(insert)``); raw asyncpg ``BEGIN / <the append statement> / COMMIT``
  (baseline): the library's append statement — expected-version, idempotency and tombstone
  checks, the ordering key and the NOTIFY in one statement — hand-written on the driver (its
  text read once from the library, its arguments built by hand), since the guarantees are the
  library's and not the driver's; a bare ``INSERT`` on raw asyncpg for reference (what those
  guarantees cost the server); and the unit of work on psycopg 3 against the same
  statement on raw psycopg (``compare``).
- ``uow.append_100``: 100-event batches the same ways (one append statement for the batch;
  the bare reference: ``executemany``).
- ``uow.read_1000``: a 1,000-event stream read into typed events inside a unit of work
  (raw: ``fetch`` + decode + ``model_validate``).
- ``uow.command``: the seed's command — load an aggregate, change it, save it with 2 events
  appended and 2 outbox messages, commit — against the same statements written on raw asyncpg
  in one transaction (``SELECT`` the row, version-checked ``UPDATE``, the append statement,
  the outbox ``INSERT`` for both messages and its ``pg_notify``) and written by hand with an
  ``AsyncSession``; the same on psycopg 3 (ours against the same statements on raw psycopg).

Targets (issue 22): append_1 >= 0.80x raw, append_100 >= 0.90x raw, read_1000 >= 0.85x raw,
command >= 0.8x raw and >= 1.3x the hand-written session.
Run: ``uv run python -m benchmarks.run 'uow.*'``.
"""

from __future__ import annotations

import gc
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from benchmarks._pg import BenchDb, PsycopgSql
from benchmarks.bench_event_store import (
    _RAW_INSERT,
    BenchLineAdded,
    _events,
    _payload,
    _raw_rows,
    _stream,
    raw_psycopg_appends,
)
from benchmarks.harness import Context, Variant, workload
from sqlalchemy import MetaData, Numeric, String, insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core import StoredEvent
from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.event_log import _INSERTS as _APPENDS
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.statements import DriverStatement
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.tables import events_table, outbox_table


class UowBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(AggregateRoot[str]):
    id: str
    owner: str
    balance: Decimal


class AccountModel(VersionMixin, UowBase):
    __tablename__ = "bench_uow_accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    balance: Mapped[Decimal] = mapped_column(Numeric(14, 2))


class _UowDb(BenchDb):
    psycopg_engine: AsyncEngine | None = None

    async def open_all(self) -> _UowDb:
        await self.open(extra_metadata=UowBase.metadata)
        self.psycopg_engine = self.make_psycopg_engine()
        return self


class _Append:
    """The library's append statement (the one a unit of work sends: conflicts leave the
    transaction usable) as raw asyncpg / psycopg code sends it: its text read once, its
    arguments built by hand per batch as the library builds them."""

    def __init__(self, db: BenchDb) -> None:
        call = DriverStatement.compile(_APPENDS[True], db.engine.dialect)
        assert call is not None
        self.sql = call.sql
        self.names = call.names
        self.constants = call.defaults  # the statement's own literals (``coalesce(x, 0)``)
        self.psycopg = PsycopgSql(call.sql)

    def args(self, stream: str, n: int, start: int = 0) -> list[Any]:
        now = datetime.now(UTC)
        records = [
            {"n": i + 1, "event_id": str(uuid.uuid4()), "payload": _payload(start + i),
             "occurred_at": now}
            for i in range(n)
        ]  # fmt: skip
        values: dict[str, Any] = {
            "stream_id": stream,
            "lo": 0,
            "hi": 1 << 62,  # StreamState.ANY, the default
            "first_event_id": records[0]["event_id"],
            "events": orjson.dumps(records).decode(),
            "shared_event_type": "BenchLineAdded",
            "shared_aggregate_type": "Order",
            "shared_schema_version": 1,
            "shared_metadata": "{}",
            "shared_correlation_id": None,
            "shared_causation_id": None,
            "shared_tenant_id": None,
            "notify": True,
            "channel": "cqrs_events",
        }
        return [values[n] if n in values else self.constants[n] for n in self.names]


def _append_variants(db: _UowDb, batch: int, transactions: int) -> list[Variant]:
    sf = db.session_factory()
    shared = SQLAlchemyEventStore(sf, listen=False)

    def timed(body: Any) -> Any:
        async def run() -> float:
            start = time.perf_counter()
            for _ in range(transactions):
                await body(_events(_stream(), batch))
            return batch * transactions / (time.perf_counter() - start)

        return run

    async def seed_style(events: list[StoredEvent], factory: Any = sf) -> None:
        async with SQLAlchemyUnitOfWork(factory) as uow:
            await SQLAlchemyEventStore(uow.session, listen=False).append(events)
            await uow.commit()

    async def shared_store(events: list[StoredEvent]) -> None:
        async with SQLAlchemyUnitOfWork(sf) as uow:
            await shared.append(events, uow=uow)
            await uow.commit()

    async def autocommit(events: list[StoredEvent]) -> None:
        await shared.append(events)

    async def session_by_hand(events: list[StoredEvent]) -> None:
        rows = [
            {
                "event_id": e.event_id,
                "stream_id": e.aggregate_id,
                "version": i + 1,
                "event_type": e.event_type,
                "aggregate_type": e.aggregate_type,
                "schema_version": 1,
                "payload": e.payload,
                "metadata": e.metadata,
                "occurred_at": e.occurred_at,
            }
            for i, e in enumerate(events)
        ]
        async with sf() as session, session.begin():
            await session.execute(insert(events_table), rows)

    append = _Append(db)

    async def raw() -> float:
        async with db.pool.acquire() as conn:
            start = time.perf_counter()
            for _ in range(transactions):
                args = append.args(_stream(), batch)
                async with conn.transaction():
                    assert len(await conn.fetch(append.sql, *args)) == batch
            return batch * transactions / (time.perf_counter() - start)

    async def raw_bare() -> float:
        async with db.pool.acquire() as conn:
            start = time.perf_counter()
            for _ in range(transactions):
                rows = _raw_rows(_stream(), batch)
                async with conn.transaction():
                    if batch == 1:
                        await conn.execute(_RAW_INSERT, *rows[0])
                    else:
                        await conn.executemany(_RAW_INSERT, rows)
            return batch * transactions / (time.perf_counter() - start)

    variants = [
        Variant("ours, uow, store per call (seed)", timed(seed_style)),
        Variant("ours, uow, shared store uow=uow", timed(shared_store)),
        Variant("ours, autocommit (no uow)", timed(autocommit)),
        Variant("SQLAlchemy session by hand", timed(session_by_hand)),
        Variant("raw asyncpg", raw, baseline=True),
        Variant("raw asyncpg, bare INSERT", raw_bare),
    ]
    if db.psycopg_engine is not None:
        psf = db.session_factory(db.psycopg_engine)

        async def psycopg_seed(events: list[StoredEvent]) -> None:
            await seed_style(events, psf)

        async def psycopg_raw() -> float:
            (conn,) = await db.psycopg_connections()
            sql = append.psycopg
            start = time.perf_counter()
            for _ in range(transactions):
                args = append.args(_stream(), batch)
                async with conn.transaction():
                    cur = await conn.execute(sql.sql, sql.args(*args))
                    assert len(await cur.fetchall()) == batch
            return batch * transactions / (time.perf_counter() - start)

        variants += [
            Variant("psycopg: ours, uow, store per call", timed(psycopg_seed)),
            Variant("psycopg: raw", psycopg_raw),
            Variant("psycopg: raw, bare INSERT", raw_psycopg_appends(db, batch, transactions)),
        ]

    async def warm() -> None:
        for v in variants:
            await v.run()

    variants[0] = Variant(variants[0].name, variants[0].run, setup=warm)
    return variants


_COMPARE = (
    ("ours, uow, store per call (seed)", "SQLAlchemy session by hand"),
    ("psycopg: ours, uow, store per call", "psycopg: raw"),
)


@workload("uow.append_1", "one event per unit of work", unit="events/s", compare=_COMPARE)
async def append_1(ctx: Context) -> list[Variant]:
    db = await _UowDb(ctx).open_all()
    return _append_variants(db, 1, ctx.size(400))


@workload("uow.append_100", "100-event batches per unit of work", unit="events/s", compare=_COMPARE)
async def append_100(ctx: Context) -> list[Variant]:
    db = await _UowDb(ctx).open_all()
    return _append_variants(db, 100, ctx.size(40))


@workload("uow.read_1000", "read a 1,000-event stream in a unit of work", unit="events/s")
async def read_1000(ctx: Context) -> list[Variant]:
    db = await _UowDb(ctx).open_all()
    sf = db.session_factory()
    stream = "uow-read"
    store = SQLAlchemyEventStore(sf, listen=False)
    for _ in range(10):
        await store.append(_events(stream, 100))
    reads = ctx.size(40)
    raw_sql = (
        "SELECT event_id, payload, metadata, occurred_at, aggregate_type FROM cqrs_events "
        "WHERE stream_id = $1 ORDER BY version"
    )

    async def ours() -> float:
        gc.collect()
        start = time.perf_counter()
        for _ in range(reads):
            async with SQLAlchemyUnitOfWork(sf) as uow:
                events = await SQLAlchemyEventStore(uow.session).load_events(stream)
            assert len(events) == 1000
        return 1000 * reads / (time.perf_counter() - start)

    async def raw() -> float:
        async with db.pool.acquire() as conn:
            gc.collect()
            start = time.perf_counter()
            for _ in range(reads):
                async with conn.transaction():
                    rows = await conn.fetch(raw_sql, stream)
                events = [
                    BenchLineAdded.model_validate(
                        {
                            **orjson.loads(r["payload"]),
                            "event_id": r["event_id"],
                            "occurred_at": r["occurred_at"],
                            "aggregate_id": stream,
                            "aggregate_type": r["aggregate_type"],
                            "metadata": orjson.loads(r["metadata"]),
                        }
                    )
                    for r in rows
                ]
                assert len(events) == 1000
            return 1000 * reads / (time.perf_counter() - start)

    async def warm() -> None:
        await ours()
        await raw()

    return [Variant("ours", ours, setup=warm), Variant("raw asyncpg", raw, baseline=True)]


_RAW_SELECT = "SELECT id, owner, balance, version FROM bench_uow_accounts WHERE id = $1"
_RAW_UPDATE = (
    "UPDATE bench_uow_accounts SET owner = $2, balance = $3, version = version + 1 "
    "WHERE id = $1 AND version = $4"
)
_RAW_OUTBOX = (
    "INSERT INTO outbox_messages (message_id, event_type, payload, metadata, created_at, "
    "available_at, partition_key) VALUES ($1, $2, $3::jsonb, '{}'::jsonb, $4, $4, $5) "
    "ON CONFLICT (message_id) DO NOTHING"
)
_RAW_NOTIFY = "SELECT pg_notify('cqrs_ddd_outbox', '')"


@workload(
    "uow.command",
    "load, change, save + 2 events + 2 outbox messages, commit",
    unit="commands/s",
    compare=(
        ("ours (seed pattern)", "SQLAlchemy session by hand"),
        ("psycopg: ours (seed pattern)", "psycopg: raw"),
    ),
)
async def command(ctx: Context) -> list[Variant]:
    db = await _UowDb(ctx).open_all()
    sf = db.session_factory()
    n = ctx.size(300)
    accounts = [f"acc-{i}" for i in range(50)]
    repo = SQLAlchemyRepository(Account, AccountModel)
    async with SQLAlchemyUnitOfWork(sf) as uow:
        for a in accounts:
            await repo.add(Account(id=a, owner="o", balance=Decimal("100.00")), uow=uow)
        await uow.commit()
    seq = iter(range(10**9))

    def events_for(account: str) -> list[StoredEvent]:
        return [
            StoredEvent(event_type="BenchLineAdded", aggregate_id=account, payload=_payload(i))
            for i in range(2)
        ]

    def messages_for(account: str) -> list[OutboxMessage]:
        return [
            OutboxMessage(event_type="Deposited", payload={"a": account}, partition_key=account)
            for _ in range(2)
        ]

    async def ours(factory: Any = sf) -> float:
        start = time.perf_counter()
        for _ in range(n):
            account = accounts[next(seq) % len(accounts)]
            async with SQLAlchemyUnitOfWork(factory) as uow:
                acc = await repo.get(account, uow=uow)
                assert acc is not None
                acc.balance += Decimal("1.00")
                await repo.add(acc, uow=uow)
                await SQLAlchemyEventStore(uow.session, listen=False).append(events_for(account))
                await SQLAlchemyOutboxStorage(uow.session).save_messages(messages_for(account))
                await uow.commit()
        return n / (time.perf_counter() - start)

    async def session_by_hand() -> float:
        start = time.perf_counter()
        for _ in range(n):
            account = accounts[next(seq) % len(accounts)]
            async with sf() as session, session.begin():
                model = await session.get(AccountModel, account)
                assert model is not None
                model.balance += Decimal("1.00")
                await session.flush()
                version = int(
                    (
                        await session.execute(
                            events_table.select()
                            .with_only_columns(events_table.c.version)
                            .where(events_table.c.stream_id == account)
                            .order_by(events_table.c.version.desc())
                            .limit(1)
                        )
                    ).scalar()
                    or 0
                )
                now = datetime.now(UTC)
                await session.execute(
                    insert(events_table),
                    [
                        {
                            "event_id": e.event_id,
                            "stream_id": account,
                            "version": version + i + 1,
                            "event_type": e.event_type,
                            "schema_version": 1,
                            "payload": e.payload,
                            "metadata": {},
                            "occurred_at": now,
                        }
                        for i, e in enumerate(events_for(account))
                    ],
                )
                await session.execute(
                    insert(outbox_table),
                    [
                        {
                            "message_id": m.message_id,
                            "event_type": m.event_type,
                            "payload": m.payload,
                            "metadata": {},
                            "created_at": now,
                            "available_at": now,
                            "partition_key": account,
                        }
                        for m in messages_for(account)
                    ],
                )
        return n / (time.perf_counter() - start)

    append = _Append(db)

    def outbox_rows(account: str) -> list[tuple[Any, ...]]:
        now = datetime.now(UTC)
        payload = orjson.dumps({"a": account}).decode()
        return [(str(uuid.uuid4()), "Deposited", payload, now, account) for _ in range(2)]

    async def raw() -> float:
        async with db.pool.acquire() as conn:
            start = time.perf_counter()
            for _ in range(n):
                account = accounts[next(seq) % len(accounts)]
                async with conn.transaction():
                    row = await conn.fetchrow(_RAW_SELECT, account)
                    balance = row["balance"] + Decimal("1.00")
                    status = await conn.execute(
                        _RAW_UPDATE, account, row["owner"], balance, row["version"]
                    )
                    assert status == "UPDATE 1"
                    await conn.fetch(append.sql, *append.args(account, 2))
                    await conn.executemany(_RAW_OUTBOX, outbox_rows(account))
                    await conn.execute(_RAW_NOTIFY)
        return n / (time.perf_counter() - start)

    variants = [
        Variant("ours (seed pattern)", ours),
        Variant("SQLAlchemy session by hand", session_by_hand),
        Variant("raw asyncpg", raw, baseline=True),
    ]
    if db.psycopg_engine is not None:
        psf = db.session_factory(db.psycopg_engine)
        select_sql, update_sql = PsycopgSql(_RAW_SELECT), PsycopgSql(_RAW_UPDATE)
        outbox_sql = PsycopgSql(_RAW_OUTBOX)

        async def psycopg_ours() -> float:
            return await ours(psf)

        async def psycopg_raw() -> float:
            (conn,) = await db.psycopg_connections()
            start = time.perf_counter()
            for _ in range(n):
                account = accounts[next(seq) % len(accounts)]
                async with conn.transaction():
                    cur = await conn.execute(select_sql.sql, select_sql.args(account))
                    _id, owner, balance, version = await cur.fetchone()
                    cur = await conn.execute(
                        update_sql.sql,
                        update_sql.args(account, owner, balance + Decimal("1.00"), version),
                    )
                    assert cur.rowcount == 1
                    await conn.execute(
                        append.psycopg.sql, append.psycopg.args(*append.args(account, 2))
                    )
                    async with conn.cursor() as many:
                        await many.executemany(
                            outbox_sql.sql, outbox_sql.rows(outbox_rows(account))
                        )
                    await conn.execute(_RAW_NOTIFY)
            return n / (time.perf_counter() - start)

        variants += [
            Variant("psycopg: ours (seed pattern)", psycopg_ours),
            Variant("psycopg: raw", psycopg_raw),
        ]

    async def warm() -> None:
        for v in variants:
            await v.run()

    variants[0] = Variant(variants[0].name, variants[0].run, setup=warm)
    return variants


__all__ = ["AccountModel", "async_sessionmaker"]
