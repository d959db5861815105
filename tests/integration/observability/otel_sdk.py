"""The OpenTelemetry SDK behind the library's spans and meters, in memory, for these tests.

OpenTelemetry keeps the first global tracer / meter provider a process is given: both are set
once here (the library finds them through the API, as an application's would be found) and
each test starts with an empty exporter and the process switches read again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cqrs_ddd_persistence_sqlalchemy.observability import metrics as library_metrics
from cqrs_ddd_persistence_sqlalchemy.observability import tracing as library_tracing

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


def _install() -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


_install()


class Spans:
    """The spans finished so far in the test."""

    def all(self) -> list[ReadableSpan]:
        return list(EXPORTER.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans {name!r} in {[s.name for s in self.all()]}"
        return found[0]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spans]:
    monkeypatch.delenv("CQRS_TRACING", raising=False)
    library_tracing.reset()
    EXPORTER.clear()
    yield Spans()
    library_tracing.reset()
    EXPORTER.clear()


def metric_points(name: str) -> list[tuple[dict[str, Any], Any]]:
    """``(attributes, point)`` of metric ``name`` read now (a gauge's value, a counter's sum,
    a histogram's count / sum)."""
    data = READER.get_metrics_data()
    found: list[tuple[dict[str, Any], Any]] = []
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
    return found


def value(name: str, **attributes: str) -> float | None:
    """The value of gauge / counter ``name`` for exactly ``attributes`` (``None``: no point)."""
    for attrs, point in metric_points(name):
        if attrs == attributes:
            return float(point.value)
    return None


@pytest.fixture
def meters() -> Iterator[None]:
    library_metrics.reset()
    yield
    library_metrics.reset()
