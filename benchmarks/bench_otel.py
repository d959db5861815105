"""What OpenTelemetry costs the hot paths: the same workload with the ``otel`` extra not
installed, installed but switched off, installed with no provider set (the API's default), and
on (an SDK tracer provider with a batch span processor, an SDK meter provider), in the same run.

- ``otel.append_1``: one event appended outside any unit of work (one autocommit statement).
- ``otel.uow_append_1``: one event appended in a unit of work, then committed.
- ``otel.append_1.cpu`` / ``otel.uow_append_1.cpu``: the same, measured as this process's CPU
  time per operation (microseconds, lower is better): instrumentation is a client-side cost,
  and on a shared machine wall-clock throughput moves by more than it.

"not installed" behaves exactly as without ``opentelemetry-api`` (the library's switches are
set as its import failure sets them, ``tracing.reset(installed=False)``); every other variant
reads the switches again before its run. The SDK's providers are handed to the library
(``use_tracer_provider`` / ``use_meter_provider``), never made global, so the other workloads
of a run are unaffected. Run: ``uv run python -m benchmarks.run 'otel.*'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks._pg import BenchDb
from benchmarks.bench_event_store import _events, _stream
from benchmarks.harness import Context, Variant, workload

from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyEventStore, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.observability import metrics, tracing

#: Sets a mode up; returns what must run before the clock stops (the "on" mode's export of
#: the spans it queued: a batch processor's thread would otherwise charge the next variant).
Mode = Callable[[], Callable[[], object] | None]


def _not_installed() -> None:
    tracing.use_tracer_provider(None)
    metrics.use_meter_provider(None)
    tracing.reset(installed=False)
    metrics.reset(installed=False)
    return


def _switched_off() -> None:
    os.environ["CQRS_TRACING"] = os.environ["CQRS_METRICS"] = "0"
    tracing.use_tracer_provider(None)
    metrics.use_meter_provider(None)
    return


def _api_only() -> None:
    os.environ.pop("CQRS_TRACING", None)
    os.environ.pop("CQRS_METRICS", None)
    tracing.use_tracer_provider(None)
    metrics.use_meter_provider(None)
    return


def _sdk_mode() -> Mode | None:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def on() -> Callable[[], object]:
        _api_only()
        tracing.use_tracer_provider(tracer_provider)
        metrics.use_meter_provider(meter_provider)
        return tracer_provider.force_flush

    return on


def _variants(
    operation: Callable[[], Awaitable[Any]], count: int, *, cpu: bool = False
) -> list[Variant]:
    modes: list[tuple[str, Mode | None, bool]] = [
        ("not installed", _not_installed, True),
        ("installed, off (CQRS_TRACING=0, CQRS_METRICS=0)", _switched_off, False),
        ("installed, no provider set", _api_only, False),
        ("on: SDK spans (batch processor) + meters", _sdk_mode(), False),
    ]

    def timed(mode: Mode) -> Callable[[], Awaitable[float]]:
        clock = time.process_time if cpu else time.perf_counter

        async def run() -> float:
            finish = mode()
            start = clock()
            for _ in range(count):
                await operation()
            if finish is not None:
                finish()
            elapsed = clock() - start
            # CPU: microseconds of this process per operation (what instrumentation adds on
            # the client, without the server's and the shared machine's noise).
            return elapsed / count * 1e6 if cpu else count / elapsed

        return run

    variants = [Variant(name, timed(mode), baseline=base) for name, mode, base in modes if mode]

    async def warm() -> None:
        for v in variants:
            await v.run()

    async def restore() -> None:
        _api_only()  # the library's default state for the workloads after these

    variants[0] = Variant(
        variants[0].name, variants[0].run, baseline=True, setup=warm, teardown=restore
    )
    return variants


@workload("otel.append_1", "one event appended outside a unit of work", unit="events/s")
async def append_1(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    store = SQLAlchemyEventStore(db.engine, listen=False)

    async def append() -> None:
        await store.append(_events(_stream(), 1))

    return _variants(append, ctx.size(400))


@workload("otel.uow_append_1", "one event appended in a unit of work", unit="events/s")
async def uow_append_1(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    store = SQLAlchemyEventStore(db.engine, listen=False)

    async def append() -> None:
        async with SQLAlchemyUnitOfWork(db.engine) as uow:
            await store.append(_events(_stream(), 1), uow=uow)
            await uow.commit()

    return _variants(append, ctx.size(400))


@workload(
    "otel.append_1.cpu",
    "client CPU of one event appended outside a unit of work",
    unit="us/op",
    higher_is_better=False,
)
async def append_1_cpu(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    store = SQLAlchemyEventStore(db.engine, listen=False)

    async def append() -> None:
        await store.append(_events(_stream(), 1))

    return _variants(append, ctx.size(400), cpu=True)


@workload(
    "otel.uow_append_1.cpu",
    "client CPU of one event appended in a unit of work",
    unit="us/op",
    higher_is_better=False,
)
async def uow_append_1_cpu(ctx: Context) -> list[Variant]:
    db = await BenchDb(ctx).open()
    store = SQLAlchemyEventStore(db.engine, listen=False)

    async def append() -> None:
        async with SQLAlchemyUnitOfWork(db.engine) as uow:
            await store.append(_events(_stream(), 1), uow=uow)
            await uow.commit()

    return _variants(append, ctx.size(400), cpu=True)
