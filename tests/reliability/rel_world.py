"""A small running system for fault tests: writers, an outbox relay, a job worker and a
projection runner, each on its own engine tagged with its own ``application_name`` (so a test
can terminate exactly one service's connections), plus the invariant checks afterwards.

Writers produce, per batch ``k`` and in one unit of work: ``EVENTS_PER_BATCH`` ``Tick`` events on
stream ``s{k % STREAMS}``, one outbox message per event and one job. Ids are deterministic
(``e-{k}-{i}``, ``m-{k}-{i}``, ``j-{k}``), so a writer that lost its connection at an unknown
moment of its commit can simply retry: the stores are idempotent by id.

Invariants (``check``):
- projection: one document per stream whose ``_version`` (incremented by every application)
  equals the stream's length — no event applied twice, none skipped — and the checkpoint counts
  every event;
- outbox: every message published (at least once by the broker, here an in-memory one), none
  pending or dead;
- jobs: every job COMPLETED exactly once in the database; the handler ran at least once per job;
- event log: every committed event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from traceback import format_exception
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tests.reliability.rel_faults import app_name, tagged_engine

from cqrs_ddd_advanced_core.jobs import BackgroundJob, JobContext
from cqrs_ddd_advanced_core.jobs import Backoff as JobBackoff
from cqrs_ddd_advanced_core.projections import ErrorPolicy, Projection, ProjectionContext
from cqrs_ddd_core.errors import CQRSDDDError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy import metadata
from cqrs_ddd_persistence_sqlalchemy.advanced import (
    JobWorker,
    ProjectionRunner,
    SQLAlchemyBackgroundJobRepository,
)
from cqrs_ddd_persistence_sqlalchemy.core import (
    OutboxRelay,
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStorage,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.publishers.memory import InMemoryPublisher
from cqrs_ddd_persistence_sqlalchemy.queue.backoff import Backoff

logger = logging.getLogger(__name__)

STREAMS = 8
EVENTS_PER_BATCH = 3
COLLECTION = "rel_tick_counts"

effects_md = sa.MetaData()
job_effects = sa.Table(
    "rel_job_effects",
    effects_md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False),
)


class RelTickJob(BackgroundJob):
    batch: int = 0
    # Every run may meet a terminated backend (the handler's own connection, the settle's):
    # each such run counts an attempt, and at the default 3 a job could go dead under the
    # faults, which is the retry policy working, not a lost job. Nothing here gives up.
    max_attempts: int = 1000


class ErrorCounter(logging.Handler):
    """Counts log records at WARNING and above per logger (to spot tight error loops)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] += 1

    def __enter__(self) -> ErrorCounter:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def close_leaked_listeners(engines: Any) -> int:
    """Close LISTEN connections of ``engines`` that a dropped listener still holds."""
    from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.listen import NotificationListener

    mine = {id(e) for e in engines}
    leaked = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, NotificationListener)
        and obj._conn is not None
        and id(obj.engine) in mine
    ]
    for listener in leaked:
        with contextlib.suppress(Exception):
            await listener.close()
    return len(leaked)


@dataclass
class World:
    url: str
    schema: str
    prefix: str = field(default_factory=lambda: app_name("rel"))
    engines: dict[str, AsyncEngine] = field(default_factory=dict)
    publisher: InMemoryPublisher = field(default_factory=InMemoryPublisher)
    written: set[int] = field(default_factory=set)
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    running: set[str] = field(default_factory=set)
    write_retries: int = 0
    leaked: int = 0
    #: seconds each publish / job / projected event takes (keeps the services busy for a while)
    slow: float = 0.0
    #: the job worker's stalled-job recovery interval (None: off)
    recover_interval: float | None = None

    def name(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def engine(self, service: str) -> AsyncEngine:
        if service not in self.engines:
            self.engines[service] = tagged_engine(
                self.schema, self.name(service), url=self.url, pool_size=4, max_overflow=4,
                pool_timeout=10,
            )  # fmt: skip
        return self.engines[service]

    def factory(self, service: str) -> async_sessionmaker[AsyncSession]:
        return async_sessionmaker(self.engine(service), expire_on_commit=False)

    async def setup(self) -> None:
        async with self.engine("writer").begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(effects_md.create_all)

    async def dispose(self) -> None:
        await self.stop()
        for eng in self.engines.values():
            await eng.dispose()
        # A connection leaked by a service under the faults (a known relay bug: a failed LISTEN
        # start, see test_rel_relay_failed_listen_leaks_no_connection) would be garbage-collected
        # later, and its warning-as-error would fail an innocent test: close such leaks here.
        self.leaked = await close_leaked_listeners(self.engines.values())

    # -- writing -------------------------------------------------------------------------------
    async def write_batch(self, k: int, *, attempts: int = 60) -> None:
        """One unit of work: events + outbox messages + a job, retried on retryable errors."""
        factory = self.factory("writer")
        events = SQLAlchemyEventStore(factory, listen=False)
        outbox = SQLAlchemyOutboxStorage(factory)
        jobs = SQLAlchemyBackgroundJobRepository(RelTickJob, factory)
        stream = f"s{k % STREAMS}"
        for attempt in range(1, attempts + 1):
            try:
                async with SQLAlchemyUnitOfWork(factory) as uow:
                    batch = [
                        StoredEvent(
                            event_type="Tick",
                            aggregate_id=stream,
                            payload={"k": k, "i": i},
                            event_id=f"e-{k}-{i}",
                        )
                        for i in range(EVENTS_PER_BATCH)
                    ]
                    await events.append(batch, uow=uow)
                    await outbox.save_messages(
                        [
                            OutboxMessage(
                                event_type="Tick", payload={"k": k, "i": i}, message_id=f"m-{k}-{i}"
                            )
                            for i in range(EVENTS_PER_BATCH)
                        ],
                        uow=uow,
                    )
                    await jobs.enqueue(
                        RelTickJob(batch=k, id=f"j-{k}"), dedupe_key=f"j-{k}", uow=uow
                    )
                    await uow.commit()
                self.written.add(k)
                return
            except CQRSDDDError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                self.write_retries += 1
                await asyncio.sleep(min(0.05 * attempt, 1.0))

    # -- services ------------------------------------------------------------------------------
    def start(self, only: tuple[str, ...] = ("relay", "worker", "runner")) -> None:
        self.running = set(only)
        self.publisher.delay = self.slow
        relay_outbox = SQLAlchemyOutboxStorage(
            self.engine("relay"), lease_seconds=3, backoff=Backoff(base=0.05, maximum=0.5)
        )
        self.relay = OutboxRelay(
            relay_outbox,
            self.publisher,
            batch_size=10,
            poll_interval=0.05,
            listen=True,
            error_backoff=Backoff(base=0.05, maximum=0.5),
            stats_interval=3600,
        )
        jobs = SQLAlchemyBackgroundJobRepository(
            RelTickJob, self.engine("worker"), lease_seconds=3,
            backoff=JobBackoff(base=0.05, maximum=0.5),
        )  # fmt: skip
        self.jobs = jobs

        async def handle(job: RelTickJob, ctx: JobContext) -> Any:
            if self.slow:
                await asyncio.sleep(self.slow)
            async with self.engine("worker").begin() as conn:
                await conn.execute(sa.insert(job_effects).values(job_id=job.id))
            return {"batch": job.batch}

        self.worker = JobWorker(
            jobs, handlers={RelTickJob: handle}, concurrency=4, poll_interval=0.05,
            recover_interval=self.recover_interval, shutdown_timeout=5,
        )  # fmt: skip
        projection = Projection("rel_ticks", collections=[COLLECTION])

        @projection.on("Tick")
        async def tick(event: StoredEvent, ctx: ProjectionContext) -> None:
            if self.slow:
                await asyncio.sleep(self.slow / 5)
            await ctx.store.upsert(
                COLLECTION, event.aggregate_id, {"last_version": event.version}, uow=ctx.uow
            )

        runner_factory = self.factory("runner")
        self.runner = ProjectionRunner(
            projection,
            event_store=SQLAlchemyEventStore(runner_factory, listen=False),
            session_factory=runner_factory,
            batch_size=7,
            poll_interval=0.05,
            error_policy=ErrorPolicy(max_attempts=1000, backoff=0.05),
        )
        runs = {
            "relay": lambda: self.relay.run(),
            "worker": lambda: self.worker.run(),
            "runner": lambda: self.runner.run(),
        }
        self.tasks = {s: asyncio.create_task(runs[s](), name=s) for s in only}

    def dead_services(self) -> dict[str, str | None]:
        """Services whose task ended (with its exception) — they should run until stopped."""
        out: dict[str, str | None] = {}
        for name, task in self.tasks.items():
            if task.done():
                exc = None if task.cancelled() else task.exception()
                # the tail of the traceback says where the service gave up
                out[name] = None if exc is None else "".join(format_exception(exc))[-2500:]
        return out

    async def stop(self) -> None:
        if not self.tasks:
            return
        self.stop_event.set()
        if "runner" in self.tasks:
            self.runner.stop()
        if "relay" in self.tasks:
            self.relay.stop()
        if "worker" in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker.stop(), 15)
        for task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 15)
        self.tasks = {}

    # -- invariants ----------------------------------------------------------------------------
    async def progress(self) -> dict[str, int]:
        """How much of what was written each service has finished (from the database)."""
        async with self.engine("checker").connect() as conn:
            published = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM outbox_messages WHERE status = 'done'")
                )
            ).scalar_one()
            completed = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM cqrs_background_jobs WHERE status = 'done'")
                )
            ).scalar_one()
            projected = (
                await conn.execute(
                    sa.text("SELECT coalesce(sum(events_processed), 0) FROM projection_positions")
                )
            ).scalar_one()
        return {"published": published, "completed": completed, "projected": projected}

    def expected(self) -> dict[str, int]:
        n = len(self.written)
        return {
            "published": n * EVENTS_PER_BATCH if "relay" in self.running else 0,
            "completed": n if "worker" in self.running else 0,
            "projected": n * EVENTS_PER_BATCH if "runner" in self.running else 0,
        }

    async def wait_done(self, within: float, on_tick: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            got = await self._progress_or_none()
            if got == self.expected():
                return
            dead = self.dead_services()
            if dead:
                raise AssertionError(
                    f"services died: {dead!r}; progress {got} of {self.expected()}"
                )
            if loop.time() > deadline:
                _log_tasks()
                self._log_worker()
                raise AssertionError(
                    f"not done within {within}s: {got} of {self.expected()}; "
                    f"jobs by status and attempts: {await self._job_states()}"
                )
            if on_tick is not None:
                on_tick()
            await asyncio.sleep(0.1)

    def _log_worker(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is None:
            return
        c = worker._completions
        pin = worker._pin
        logger.error(
            "worker: slots=%d waiting=%d running=%d gate=%r pin=%r locked=%r stopping=%r "
            "completions alone=%r settling=%r queued=%d tasks=%d",
            len(worker._slots), len(worker._waiting), len(worker._running), worker._gate,
            pin, pin._lock.locked() if pin is not None else None, worker.stopping,
            c._alone, c._settling, len(c._queued), len(c._tasks),
        )  # fmt: skip

    async def _job_states(self) -> list[tuple[Any, ...]] | str:
        """(status, attempts, how many) of the jobs: why a job is not done, when one is not."""
        try:
            async with self.engine("checker").connect() as conn:
                sql = "SELECT status, attempts, count(*) FROM cqrs_background_jobs GROUP BY 1, 2"
                states = [tuple(r) for r in (await conn.execute(sa.text(sql))).all()]
                # The worker's sessions: one idle in a transaction would hide its writes.
                sessions = sa.text(
                    "SELECT state, now() - state_change, left(query, 80) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                )
                rows = (await conn.execute(sessions, {"name": self.name("worker")})).all()
                return states + [tuple(r) for r in rows]
        except Exception as exc:  # a diagnostic only
            return repr(exc)

    async def _progress_or_none(self) -> dict[str, int] | None:
        try:
            return await self.progress()
        except Exception:  # the checker may meet the fault too (restart)
            logger.debug("progress probe failed", exc_info=True)
            return None

    async def check(self, delivered: Counter[str] | None = None) -> dict[str, Any]:
        """Assert every invariant; return numbers for the report.

        ``delivered``: message id -> times the broker got it (default: the in-memory publisher).
        """
        n = len(self.written)
        async with self.engine("checker").connect() as conn:
            events = (
                await conn.execute(sa.text("SELECT event_id, stream_id FROM cqrs_events"))
            ).all()
            event_ids = Counter(r[0] for r in events)
            assert len(event_ids) == n * EVENTS_PER_BATCH and max(event_ids.values()) == 1
            per_stream = Counter(r[1] for r in events)
            if "runner" in self.running:
                sql = sa.text(f"SELECT id, _version FROM {COLLECTION}")
                versions = {r[0]: r[1] for r in (await conn.execute(sql)).all()}
                assert versions == dict(per_stream), (versions, dict(per_stream))
            outbox = (
                await conn.execute(
                    sa.text("SELECT message_id, status = 'done', status FROM outbox_messages")
                )
            ).all()
            assert len(outbox) == n * EVENTS_PER_BATCH
            if "relay" in self.running:
                assert all(r[1] for r in outbox), [r for r in outbox if not r[1]][:5]
            jobs = (
                await conn.execute(sa.text("SELECT job_id, status FROM cqrs_background_jobs"))
            ).all()
            assert len(jobs) == n
            if "worker" in self.running:
                assert all(r[1] == "done" for r in jobs), jobs[:5]
            effects = Counter(
                r[0] for r in (await conn.execute(sa.select(job_effects.c.job_id))).all()
            )
        if delivered is None:
            delivered = Counter(self.publisher.ids)
        if "relay" in self.running:
            assert set(delivered) == {r[0] for r in outbox}  # at least once
        if "worker" in self.running:
            assert set(effects) == {r[0] for r in jobs}  # every handler ran at least once
        return {
            "batches": n,
            "events": len(event_ids),
            "duplicate_deliveries": sum(c - 1 for c in delivered.values()),
            "duplicate_job_runs": sum(c - 1 for c in effects.values()),
            "write_retries": self.write_retries,
        }


def _log_tasks() -> None:
    """Where every task waits (a service that stopped making progress without dying)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=12, file=out)
        logger.error("task %s:\n%s", task.get_name(), out.getvalue())
