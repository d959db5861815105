"""Workers, the event-store subscriber and session settings through PgBouncer in transaction
mode (``create_engine(..., pooler="transaction")``), on the driver of the test URL."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.conftest import PG_URL, pg_dsn
from tests.integration.topology.conftest import pooled_engine
from tests.topology.pgbouncer import Bouncer

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext, JobStatus
from cqrs_ddd_core.errors import StatementTimeoutError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import create_engine, metadata
from cqrs_ddd_persistence_sqlalchemy.advanced import JobWorker, SQLAlchemyBackgroundJobRepository
from cqrs_ddd_persistence_sqlalchemy.core import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for
from cqrs_ddd_persistence_sqlalchemy.execution.resolve import execution_for

_JOB_MODELS = str(Path(__file__).parents[1] / "jobs")
if _JOB_MODELS not in sys.path:
    sys.path.insert(0, _JOB_MODELS)

SF = async_sessionmaker[AsyncSession]


def _event(stream: str, n: int) -> StoredEvent:
    return StoredEvent(
        aggregate_id=stream, aggregate_type="Pooled", event_type="Ticked", payload={"n": n}
    )


async def test_concurrent_mixed_operations_all_succeed(
    engine: AsyncEngine, library_tables: AsyncEngine, session_factory: SF
) -> None:
    # 8 tasks on more client connections than PgBouncer's 4 server connections: single
    # appends, unit-of-work appends with outbox messages, stream reads, outbox claims and
    # completions. On a plain engine 67 of these 192 operations succeeded here on asyncpg
    # (`prepared statement "__asyncpg_stmt_…" does not exist`), 72 with SQLAlchemy's PgBouncer
    # recipe, and 173 on psycopg (`prepared statement "_pg3_0" already exists`).
    store = SQLAlchemyEventStore(session_factory)
    outbox = SQLAlchemyOutboxStorage(engine)
    done: Counter[str] = Counter()

    async def task(t: int) -> None:
        for i in range(24):
            kind = i % 4
            if kind == 0:
                await store.append(_event(f"s{t}", i))
            elif kind == 1:
                async with SQLAlchemyUnitOfWork(session_factory) as uow:
                    await store.append(_event(f"u{t}", i), uow=uow)
                    await outbox.save_messages([OutboxMessage(event_type="M", payload={})], uow=uow)
                    await uow.commit()
            elif kind == 2:
                assert len(await store.get_events(f"s{t}")) == i // 4 + 1
            else:
                await outbox.complete(await outbox.claim(5))
            done[f"kind{kind}"] += 1

    await asyncio.gather(*(task(t) for t in range(8)))
    assert sum(done.values()) == 192


async def test_settings_apply_in_every_transaction_and_statement(
    pgbouncer: Bouncer, pooled_schema: str
) -> None:
    engine = pooled_engine(pgbouncer, pooled_schema, statement_timeout_ms=1500, lock_timeout_ms=700)
    probe = text(
        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
        "current_schema()"
    )
    try:
        expected = ("1500ms", "700ms", pooled_schema)
        # a single statement outside any unit of work (its own transaction in pooler mode)
        rows = await execution_for(engine).fetch(probe)
        assert tuple(rows[0]) == expected
        # a unit of work's transaction
        sf = async_sessionmaker(engine, expire_on_commit=False)
        async with SQLAlchemyUnitOfWork(sf) as uow:
            assert tuple((await uow.session.execute(probe)).one()) == expected
        # and the timeout is enforced: the library's error, not a session that ignores it
        with pytest.raises(StatementTimeoutError):
            await execution_for(engine).execute(text("SELECT pg_sleep(5)"))
    finally:
        await engine.dispose()


async def test_a_plain_engine_with_session_settings_is_refused_by_the_pooler(
    pgbouncer: Bouncer,
) -> None:
    # What pooler mode fixes: settings sent as startup parameters.
    engine = create_engine(pgbouncer.url(PG_URL), statement_timeout_ms=1000)
    try:
        with pytest.raises(Exception, match="unsupported startup parameter"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_no_listen_behind_the_pooler_but_notify_is_still_sent(
    engine: AsyncEngine, library_tables: AsyncEngine, session_factory: SF
) -> None:
    support = dialect_for(engine)
    assert support.listener(engine, "cqrs_ddd_events") is None
    async with support.listen_event(engine, "cqrs_ddd_events") as woken:
        assert woken is None
    # A LISTEN on a direct connection still hears the appends made through the pooler.
    heard = asyncio.Event()
    direct = await asyncpg.connect(pg_dsn())
    try:
        store = SQLAlchemyEventStore(session_factory)
        await direct.add_listener(store.channel, lambda *_: heard.set())
        await store.append(_event("notify", 1))
        await asyncio.wait_for(heard.wait(), 10)
    finally:
        await direct.close()


async def test_subscriber_gets_every_event_once_in_order_while_writers_append(
    engine: AsyncEngine, library_tables: AsyncEngine, session_factory: SF
) -> None:
    store = SQLAlchemyEventStore(session_factory, poll_interval=0.05)
    writers, per_writer = 6, 25
    total = writers * per_writer
    seen: list[StoredEvent] = []

    async def consume() -> None:
        async with contextlib.aclosing(store.subscribe(batch_size=20)) as events:
            async for event in events:
                seen.append(event)
                if len(seen) == total:
                    return

    async def write(w: int) -> None:
        for n in range(per_writer):
            if n % 2:
                await store.append(_event(f"w{w}", n))
            else:
                async with SQLAlchemyUnitOfWork(session_factory) as uow:
                    await store.append(_event(f"w{w}", n), uow=uow)
                    await uow.commit()

    consumer = asyncio.create_task(consume())
    await asyncio.gather(*(write(w) for w in range(writers)))
    await asyncio.wait_for(consumer, 60)
    assert len({e.event_id for e in seen}) == total
    for w in range(writers):
        assert [e.payload["n"] for e in seen if e.aggregate_id == f"w{w}"] == list(
            range(per_writer)
        )


async def test_two_job_workers_run_every_job_once(pgbouncer: Bouncer, pooled_schema: str) -> None:
    from jobs_test_models import EchoJob

    engines = [pooled_engine(pgbouncer, pooled_schema) for _ in range(2)]
    try:
        async with engines[0].begin() as conn:
            await conn.run_sync(metadata.create_all)
        repos = [
            SQLAlchemyBackgroundJobRepository(BackgroundJob, e, lease_seconds=30) for e in engines
        ]
        await repos[0].enqueue_many([EchoJob(text=str(i)) for i in range(300)])
        ran: Counter[str] = Counter()

        async def handler(job: EchoJob, ctx: JobContext) -> str:
            ran[job.text] += 1
            await asyncio.sleep(0)
            return job.text

        workers = [
            JobWorker(repo, handlers={EchoJob: handler}, concurrency=8, poll_interval=0.02)
            for repo in repos
        ]
        done = await asyncio.gather(*(w.run_until_idle() for w in workers))
        assert sum(done) == 300 and all(done)  # both workers took part
        assert ran == Counter({str(i): 1 for i in range(300)})
        assert (await repos[1].count_by_status())[JobStatus.COMPLETED] == 300
    finally:
        for e in engines:
            await e.dispose()
