"""Child process of ``test_proj_lease_kill``: one projection runner, until SIGTERM or SIGKILL.

Usage: ``python proj_lease_child.py <url> <schema or -> <engine options JSON> <lease seconds>``
(the first three are ``DatabaseUrl.argv()``).
It counts applications per stream (as ``proj_support.counting_projection``), logs every event it
applies in ``leased_log`` (one document per event: which process, under which lease token;
``_version`` counts applications), and stalls a little per event so that a kill lands while it
leads. It prints ``READY <pid>`` once started and ``BATCH <events processed>`` after every
batch it commits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "integration" / "projections"))
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[3]))  # tests/conftest.py imports tests.*

from proj_support import TICK
from sqlalchemy.ext.asyncio import async_sessionmaker

from conftest import DatabaseUrl  # the test suite's helper
from cqrs_ddd_advanced_core.projections import Projection, ProjectionContext, ProjectionProgress
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore


async def main(database: DatabaseUrl, lease_seconds: float) -> None:
    engine = database.engine()
    session_factory = async_sessionmaker(engine, expire_on_commit=False)
    projection = Projection("leased", collections=["leased_counts", "leased_log"])
    box: list[ProjectionRunner] = []

    @projection.on(TICK)
    async def count_and_log(event: StoredEvent, ctx: ProjectionContext) -> None:
        # as proj_support.counting_projection: _version counts a stream's applications
        await ctx.upsert(
            "leased_counts",
            event.aggregate_id,
            {"last_version": event.version, "last_n": event.payload["n"]},
            idempotent=False,
        )
        await ctx.upsert(
            "leased_log",
            event.event_id,
            {"pid": os.getpid(), "token": box[0].lease.token, "position": event.position},
            idempotent=False,
        )
        await asyncio.sleep(0.005)

    runner = ProjectionRunner(
        projection,
        event_store=SQLAlchemyEventStore(session_factory, listen=False),
        session_factory=session_factory,
        batch_size=20,
        poll_interval=0.05,
        lease_duration=lease_seconds,
    )
    box.append(runner)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, runner.stop)
    print("READY", os.getpid(), flush=True)

    def committed(progress: ProjectionProgress) -> None:
        if not progress.caught_up:
            print("BATCH", progress.events_processed, flush=True)

    try:
        await runner.run(progress=committed)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(DatabaseUrl.from_argv(*sys.argv[1:4]), float(sys.argv[4])))
