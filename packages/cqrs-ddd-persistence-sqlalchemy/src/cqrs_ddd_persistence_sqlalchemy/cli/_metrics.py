"""``--metrics-port`` of the long-running services: ``/metrics`` in Prometheus text format.

The port serves the library's OpenTelemetry metrics through the OpenTelemetry Prometheus
exporter (the ``prometheus`` extra); the gauges of database state are read when the service
starts and then every :data:`GAUGE_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import err_console

__all__ = ["GAUGE_INTERVAL", "MetricsPort", "metrics_served"]

#: Seconds between two readings of the database gauges.
GAUGE_INTERVAL = 5.0

MetricsPort = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        envvar="CQRS_METRICS_PORT",
        help="Serve /metrics (Prometheus text format) on this port; needs the 'prometheus' extra.",
        show_default=False,
    ),
]


@contextlib.asynccontextmanager
async def metrics_served(port: int | None, engine: AsyncEngine) -> AsyncIterator[None]:
    """Serve ``/metrics`` on ``port`` for the block (nothing when ``port`` is ``None``)."""
    if port is None:
        yield
        return
    from cqrs_ddd_persistence_sqlalchemy.observability.gauges import DatabaseGauges
    from cqrs_ddd_persistence_sqlalchemy.observability.prometheus import serve_metrics

    stop = serve_metrics(port)
    try:
        gauges = DatabaseGauges(engine)
        await gauges.refresh()  # the first scrape already sees the database
        task = asyncio.create_task(gauges.run(interval=GAUGE_INTERVAL))
        err_console.print(f"metrics on http://0.0.0.0:{port}/metrics")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        stop()
