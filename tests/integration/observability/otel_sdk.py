"""The OpenTelemetry SDK behind the library's spans and meters, in memory, for these tests.

The providers are handed to the library for each test (``use_tracer_provider`` /
``use_meter_provider``) and taken back after it, never made global: the other tests of the
process run as without them. That the global providers are found with no code is tested in
fresh interpreters (tests/unit/test_observability_switches.py, the docs' example).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cqrs_ddd_persistence_sqlalchemy.observability import metrics as library_metrics
from cqrs_ddd_persistence_sqlalchemy.observability import tracing as library_tracing

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()
TRACER_PROVIDER = TracerProvider()
TRACER_PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
METER_PROVIDER = MeterProvider(metric_readers=[READER])
#: The tests' own spans ("the request"), on the provider the library's go to.
tracer = TRACER_PROVIDER.get_tracer("tests")


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
    library_tracing.use_tracer_provider(TRACER_PROVIDER)
    EXPORTER.clear()
    yield Spans()
    library_tracing.use_tracer_provider(None)
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
def meters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CQRS_METRICS", raising=False)
    library_metrics.use_meter_provider(METER_PROVIDER)
    yield
    library_metrics.use_meter_provider(None)
