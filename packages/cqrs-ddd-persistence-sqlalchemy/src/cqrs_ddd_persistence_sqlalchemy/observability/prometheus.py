"""``/metrics`` in Prometheus text format: an SDK meter provider read by the OpenTelemetry
Prometheus exporter (the ``prometheus`` extra), served on a port of its own."""

from __future__ import annotations

from collections.abc import Callable

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["serve_metrics"]


def serve_metrics(port: int, *, host: str = "0.0.0.0") -> Callable[[], None]:
    """Install a global SDK meter provider exported to Prometheus and serve it on
    ``http://host:port/metrics``; returns the function that stops the server.

    Call once per process, before the first metric is recorded: OpenTelemetry keeps the
    first global meter provider it is given.
    """
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigurationError(
            "--metrics-port needs the 'prometheus' extra: "
            "pip install 'cqrs-ddd-persistence-sqlalchemy[prometheus]'"
        ) from exc
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()
        provider.shutdown()

    return stop
