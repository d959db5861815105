"""Traces and metrics through OpenTelemetry (the ``otel`` extra), Prometheus ``/metrics`` for
the long-running services (the ``prometheus`` extra). See ``docs/observability.md``.

Without the extras nothing here imports OpenTelemetry and every hook is one global read.
:class:`.gauges.DatabaseGauges` reads the gauges of database state;
:func:`.prometheus.serve_metrics`
serves ``/metrics``. Both are imported from their modules (they need the stores; the hooks
here are imported by the stores).
"""

from cqrs_ddd_persistence_sqlalchemy.observability.metrics import METRICS as METRICS
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import MetricSpec as MetricSpec
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import (
    fencing_refused as fencing_refused,
)
from cqrs_ddd_persistence_sqlalchemy.observability.metrics import lease_lost as lease_lost
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import set_tracing as set_tracing
from cqrs_ddd_persistence_sqlalchemy.observability.tracing import (
    tracing_enabled as tracing_enabled,
)

__all__ = [
    "METRICS",
    "MetricSpec",
    "fencing_refused",
    "lease_lost",
    "set_tracing",
    "tracing_enabled",
]
