"""Child process of ``test_proj_kill_runner``: runs the counting projection until killed.

Usage: ``python proj_kill_child.py <url> <schema or -> <signal at event n>``.
Writes through (no write buffer) so that a kill lands on a transaction with writes in it; when
its handler reaches the ``n``-th event of this process (mid-batch), it prints ``MID-BATCH`` and
stalls, waiting for SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2] / "integration" / "projections"))
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[3]))  # tests/conftest.py imports tests.*

from proj_support import TICK, counting_projection
from sqlalchemy.ext.asyncio import async_sessionmaker

from conftest import pg_connect_args  # the test suite's helper
from cqrs_ddd_advanced_core.projections import ProjectionContext
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.advanced import ProjectionRunner
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore


async def main(url: str, schema: str, signal_at: int) -> None:
    kwargs: dict[str, Any] = {}
    if schema != "-":
        kwargs["connect_args"] = pg_connect_args(url, search_path=f"{schema}, public")
    engine = create_engine(url, **kwargs)
    session_factory = async_sessionmaker(engine, expire_on_commit=False)
    projection = counting_projection("killed", "killed_counts")
    seen = {"n": 0}

    @projection.on(TICK)
    async def stall(event: StoredEvent, ctx: ProjectionContext) -> None:
        seen["n"] += 1
        if seen["n"] == signal_at:
            print("MID-BATCH", event.position, flush=True)
            await asyncio.sleep(3600)  # killed here, in the middle of a batch

    runner = ProjectionRunner(
        projection,
        event_store=SQLAlchemyEventStore(session_factory, listen=False),
        session_factory=session_factory,
        batch_size=500,
        poll_interval=0.05,
        buffer_writes=False,
    )
    await runner.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
