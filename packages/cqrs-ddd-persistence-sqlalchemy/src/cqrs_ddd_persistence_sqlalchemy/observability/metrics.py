"""The library's OpenTelemetry metrics: one table of names, and the functions that record them.

Instruments live on the global meter provider (``opentelemetry-api``; no-ops until the
application or ``--metrics-port`` installs an SDK provider). Without the ``otel`` extra, or with
``CQRS_METRICS=0``, every function here returns after one global read.

Counters and histograms are recorded where things happen (a commit, a publish, a job run, a
lost lease). Gauges of database state (outbox age, projection lag, jobs per status...) are read
by :class:`~.gauges.DatabaseGauges`, which the long-running CLI services refresh periodically;
the observable gauges below report its last reading.

Other modules call :func:`lease_lost` and :func:`fencing_refused` when a lease is taken over or a
write is refused for a stale fencing token; their ``component`` names the worker (``outbox``,
``jobs``, ``scheduler``) or, for a :class:`~cqrs_ddd_persistence_sqlalchemy.leases.Lease`, the
lease (``projection:<name>``: one series per projection).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cqrs_ddd_core.errors import ConcurrencyError

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

__all__ = [
    "METRICS",
    "MetricSpec",
    "fencing_refused",
    "job_ran",
    "lease_lost",
    "outbox_published",
    "set_gauge",
    "uow_committed",
    "uow_failed",
    "use_meter_provider",
]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One documented metric: OpenTelemetry name, instrument, unit, attributes, meaning."""

    name: str
    instrument: str
    unit: str
    attributes: tuple[str, ...]
    description: str

    @property
    def prometheus_name(self) -> str:
        """The name the OpenTelemetry Prometheus exporter gives it."""
        base = self.name.replace(".", "_")
        if self.unit == "s":
            base += "_seconds"
        return base + "_total" if self.instrument == "counter" else base


#: Every metric of the library (docs/observability.md prints this table).
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "cqrs.eventstore.horizon.lag",
        "gauge",
        "{event}",
        (),
        "Stored events above the commit-safe horizon (not yet visible to readers).",
    ),
    MetricSpec(
        "cqrs.eventstore.horizon.age",
        "gauge",
        "s",
        (),
        "Age of the oldest open transaction holding the horizon back (0: none).",
    ),
    MetricSpec(
        "cqrs.projection.lag",
        "gauge",
        "{event}",
        ("projection",),
        "Events after the projection's checkpoint.",
    ),
    MetricSpec(
        "cqrs.projection.checkpoint.age",
        "gauge",
        "s",
        ("projection",),
        "Time since the projection's checkpoint last moved.",
    ),
    MetricSpec(
        "cqrs.outbox.pending",
        "gauge",
        "{message}",
        (),
        "Outbox messages waiting to be published (due or scheduled).",
    ),
    MetricSpec(
        "cqrs.outbox.oldest.age",
        "gauge",
        "s",
        (),
        "Age of the oldest due, unpublished outbox message (0: none).",
    ),
    MetricSpec("cqrs.outbox.dead", "gauge", "{message}", (), "Dead-lettered outbox messages."),
    MetricSpec(
        "cqrs.outbox.publish.duration",
        "histogram",
        "s",
        ("messaging.system",),
        "Publish latency of one message: the publisher's call until the broker confirmed.",
    ),
    MetricSpec(
        "cqrs.jobs",
        "gauge",
        "{job}",
        ("job_type", "status"),
        "Jobs per type and status (pending, running, completed, failed, dead, cancelled; "
        "stalled: pending with an expired lease, its worker died).",
    ),
    MetricSpec(
        "cqrs.jobs.run.duration",
        "histogram",
        "s",
        ("job_type", "outcome"),
        "Run time of one job's handler, per type and outcome (completed, failed, cancelled, "
        "interrupted).",
    ),
    MetricSpec("cqrs.sagas", "gauge", "{saga}", ("status",), "Saga instances per status."),
    MetricSpec(
        "cqrs.lease.losses",
        "counter",
        "{lease}",
        ("component",),
        "Leases taken over by another worker while held.",
    ),
    MetricSpec(
        "cqrs.lease.fencing_refusals",
        "counter",
        "{write}",
        ("component",),
        "Writes refused because their fencing token was stale.",
    ),
    MetricSpec("cqrs.uow.commits", "counter", "{commit}", (), "Unit-of-work commits."),
    MetricSpec(
        "cqrs.uow.conflicts",
        "counter",
        "{unit}",
        (),
        "Units of work ended by a concurrency conflict (optimistic version, expected stream "
        "version).",
    ),
    MetricSpec(
        "cqrs.uow.retryable_failures",
        "counter",
        "{unit}",
        (),
        "Units of work ended by a retryable error (serialization failure, deadlock, "
        "lost connection...): run them again.",
    ),
)

_SPECS = {spec.name: spec for spec in METRICS}
# Publish and job latencies: a millisecond to minutes (the SDK's default buckets are for
# milliseconds).
_SECONDS_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_OFF_VALUES = frozenset({"0", "false", "off", "no"})

# gauge name -> the last reading: [(value, attributes)], set by DatabaseGauges.
_readings: dict[str, list[tuple[float, dict[str, str]]]] = {}


class _Instruments:
    """The meter's instruments (built once, at the first recording)."""

    def __init__(self) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter("cqrs_ddd_persistence_sqlalchemy", meter_provider=_provider)
        made: dict[str, Any] = {}
        for spec in METRICS:
            if spec.instrument == "counter":
                made[spec.name] = meter.create_counter(spec.name, spec.unit, spec.description)
            elif spec.instrument == "histogram":
                made[spec.name] = meter.create_histogram(
                    spec.name,
                    spec.unit,
                    spec.description,
                    explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
                )
            else:
                meter.create_observable_gauge(
                    spec.name, [_observe(spec.name)], spec.unit, spec.description
                )
        self.by_name = made


def _observe(name: str) -> Any:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [Observation(value, attrs) for value, attrs in _readings.get(name, ())]

    return callback


_loaded = False
_instruments: _Instruments | None = None
_provider: MeterProvider | None = None
# Built once per provider (``None``: the global one): a meter keeps every instrument (and
# gauge callback) it was given.
_built: dict[MeterProvider | None, _Instruments] = {}


def _get() -> _Instruments | None:
    global _loaded, _instruments
    if _loaded:
        return _instruments
    _loaded = True
    if os.environ.get("CQRS_METRICS", "1").strip().lower() in _OFF_VALUES:
        return None
    try:
        built = _built.get(_provider) or _Instruments()
    except ImportError:  # the ``otel`` extra is not installed
        return None
    _instruments = _built[_provider] = built
    return _instruments


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record the library's metrics on ``provider`` instead of the global meter provider
    (``None``: the global one again), e.g. an application that keeps providers of its own."""
    global _provider
    _provider = provider
    reset()


def enabled() -> bool:
    """Whether the library records metrics in this process."""
    return _get() is not None


def reset(*, installed: bool | None = None) -> None:
    """Read ``CQRS_METRICS`` again at the next recording and forget the gauges' readings
    (tests; ``installed=False`` behaves as without the extra)."""
    global _loaded, _instruments
    _loaded, _instruments = installed is False, None
    _readings.clear()


def _add(name: str, amount: int, attributes: Mapping[str, str] | None = None) -> None:
    instruments = _instruments if _loaded else _get()
    if instruments is not None and amount:
        instruments.by_name[name].add(amount, attributes)


def _record(name: str, value: float, attributes: Mapping[str, str]) -> None:
    instruments = _instruments if _loaded else _get()
    if instruments is not None:
        instruments.by_name[name].record(value, attributes)


def uow_committed() -> None:
    """A unit of work committed."""
    _add("cqrs.uow.commits", 1)


def uow_failed(error: BaseException) -> None:
    """A unit-of-work commit failed with ``error`` (counted when a conflict or retryable)."""
    if isinstance(error, ConcurrencyError):
        _add("cqrs.uow.conflicts", 1)
    elif getattr(error, "retryable", False):
        _add("cqrs.uow.retryable_failures", 1)


def outbox_published(seconds: float, system: str) -> None:
    """One outbox message confirmed by the broker ``seconds`` after its batch was claimed."""
    _record("cqrs.outbox.publish.duration", seconds, {"messaging.system": system})


def job_ran(job_type: str, seconds: float, outcome: str) -> None:
    """One job's handler ran for ``seconds`` with ``outcome``."""
    _record("cqrs.jobs.run.duration", seconds, {"job_type": job_type, "outcome": outcome})


def lease_lost(component: str, count: int = 1) -> None:
    """``count`` leases held by ``component`` were taken over by another worker."""
    _add("cqrs.lease.losses", count, {"component": component})


def fencing_refused(component: str, count: int = 1) -> None:
    """``count`` writes of ``component`` were refused for a stale fencing token."""
    _add("cqrs.lease.fencing_refusals", count, {"component": component})


def set_gauge(name: str, readings: Iterable[tuple[float, Mapping[str, str]]]) -> None:
    """Replace the reading of gauge ``name`` (``(value, attributes)`` per series)."""
    if _SPECS[name].instrument != "gauge":
        raise ValueError(f"{name} is not a gauge")
    if _get() is not None:
        _readings[name] = [(value, dict(attrs)) for value, attrs in readings]
