"""Spans on the global OpenTelemetry tracer provider, or nothing at all.

With the ``otel`` extra installed (``opentelemetry-api``) every span of the library goes to the
global tracer provider, whatever provider the application installs, whenever it installs it;
until it installs one (the API's default only makes no-op spans) the library makes none.
Without the extra nothing of OpenTelemetry is imported and :func:`tracer_for` is one global
read. ``CQRS_TRACING=0`` switches spans off for the process, ``create_engine(...,
tracing=False)`` (:func:`set_tracing`) for one engine.

The W3C trace context (``traceparent``, ``tracestate``) of the span current when an event, an
outbox message or a job is written is stored with it (:func:`trace_metadata`); the worker that
handles it later starts its span as a child of that context (:func:`stored_context`) or, for a
batch serving many requests, links to each (:func:`links_to`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.dialects import dialect_for

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, Span, Tracer, TracerProvider

__all__ = [
    "TRACE_KEYS",
    "db_attributes",
    "db_span",
    "links_to",
    "set_tracing",
    "span",
    "stored_context",
    "trace_metadata",
    "tracer_for",
    "tracing_enabled",
    "use_tracer_provider",
]

#: The W3C trace-context keys stored in metadata and carried in broker headers.
TRACE_KEYS = ("traceparent", "tracestate")

_NAME = "cqrs_ddd_persistence_sqlalchemy"
_OFF_VALUES = frozenset({"0", "false", "off", "no"})
_NULL: AbstractContextManager[None] = nullcontext()

# sync engine -> False: engines created with ``tracing=False``.
_ENGINE_OFF: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()
_loaded = False
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
# Whether a tracer provider that records was set: the API's default (a proxy until one is
# set) makes only no-op spans, which are not worth their cost. Read at every span: a
# provider set later is seen at once.
_recording: Callable[[], bool] = bool


def _load() -> Tracer | None:
    global _loaded, _tracer
    _loaded = True
    _tracer = None
    if os.environ.get("CQRS_TRACING", "1").strip().lower() in _OFF_VALUES:
        return None
    try:
        from opentelemetry import trace
    except ImportError:  # the ``otel`` extra is not installed
        return None
    global _recording
    _recording = _always if _provider is not None else _global_provider_check(trace)
    # A proxy until the application sets its provider: spans reach whichever it sets.
    _tracer = trace.get_tracer(_NAME, tracer_provider=_provider)
    return _tracer


def _always() -> bool:
    return True


def _global_provider_check(trace: Any) -> Callable[[], bool]:
    """Whether the global tracer provider records, as a check cheap enough for every span."""
    no_op = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    if "OTEL_PYTHON_TRACER_PROVIDER" in os.environ or not hasattr(trace, "_TRACER_PROVIDER"):
        # A provider named in the environment is made by the API's own getter, at its first
        # call.
        def through_the_api() -> bool:
            return not isinstance(trace.get_tracer_provider(), no_op)

        return through_the_api

    def set_globally() -> bool:
        # The API's getter looks the environment up at every call while no provider is set
        # (most processes, several times per unit of work); the global it returns is read
        # instead. It is set once and never unset: once it records, it always will.
        provider = trace._TRACER_PROVIDER
        if provider is None or isinstance(provider, no_op):
            return False
        global _recording
        _recording = _always
        return True

    return set_globally


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Send the library's spans to ``provider`` instead of the global tracer provider
    (``None``: the global one again), e.g. an application that keeps providers of its own."""
    global _provider
    _provider = provider
    reset()


def reset(*, installed: bool | None = None) -> None:
    """Read ``CQRS_TRACING`` again at the next span (tests; the benchmark's same-run
    comparison passes ``installed=False`` to behave exactly as without the extra)."""
    global _loaded, _tracer
    _loaded, _tracer = False, None
    if installed is False:
        _loaded = True


def set_tracing(engine: AsyncEngine, enabled: bool) -> None:
    """Switch the spans of statements on ``engine`` off (or back on); ``create_engine(...,
    tracing=False)`` calls this."""
    if enabled:
        _ENGINE_OFF.pop(engine.sync_engine, None)
    else:
        _ENGINE_OFF[engine.sync_engine] = False


def tracing_enabled() -> bool:
    """Whether the library makes spans in this process now (extra installed, not switched
    off, a tracer provider set)."""
    return tracer_for() is not None


def tracer_for(engine: AsyncEngine | None = None) -> Tracer | None:
    """The library's tracer, ``None`` when spans are off (for the process or ``engine``) or
    when no tracer provider was set (OpenTelemetry would make no-op spans)."""
    tracer = _tracer if _loaded else _load()
    if tracer is None or not _recording():
        return None
    if engine is not None and engine.sync_engine in _ENGINE_OFF:
        return None
    return tracer


def span(
    name: str,
    attributes: Mapping[str, Any],
    *,
    engine: AsyncEngine | None = None,
    kind: str = "internal",
    context: Context | None = None,
    links: Iterable[Link] = (),
) -> AbstractContextManager[Span | None]:
    """A current span ``name`` (a shared no-op context manager when spans are off).

    ``kind`` is the name of a ``SpanKind`` (``client``, ``producer``, ``consumer``...);
    ``context`` the parent (default: the current span). An exception leaving the block is
    recorded on the span and sets its status to error.
    """
    tracer = tracer_for(engine)
    if tracer is None:
        return _NULL
    from opentelemetry.trace import SpanKind

    return tracer.start_as_current_span(
        name,
        context=context,
        kind=SpanKind[kind.upper()],
        attributes=dict(attributes),
        links=list(links),
    )


def db_span(
    engine: AsyncEngine | None,
    operation: str,
    collection: str | None = None,
    **attributes: Any,
) -> AbstractContextManager[Span | None]:
    """A client span ``"{operation} {collection}"`` with the database attributes of
    :func:`db_attributes` and ``attributes`` (nothing is built when spans are off)."""
    if tracer_for(engine) is None:
        return _NULL
    name = operation if collection is None else f"{operation} {collection}"
    attrs = db_attributes(engine, operation, collection)
    attrs.update(attributes)
    return span(name, attrs, engine=engine, kind="client")


def db_attributes(
    engine: AsyncEngine | None, operation: str, collection: str | None = None
) -> dict[str, Any]:
    """OpenTelemetry database attributes (``db.system.name``, ``db.operation.name``,
    ``db.collection.name``, ``db.namespace``) of an operation on ``engine``."""
    attributes: dict[str, Any] = {"db.operation.name": operation}
    if engine is not None:
        attributes["db.system.name"] = dialect_for(engine).name
        database = engine.url.database
        if database:
            attributes["db.namespace"] = database
    if collection is not None:
        attributes["db.collection.name"] = collection
    return attributes


def trace_metadata(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """``metadata`` with the current span's ``traceparent`` (and ``tracestate``) added, or
    ``None`` when there is nothing to add (spans off, no current span, already set)."""
    if "traceparent" in metadata or tracer_for() is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    if "traceparent" not in carrier:
        return None
    return {**metadata, **carrier}


def stored_context(metadata: Mapping[str, Any] | None) -> Context | None:
    """The trace context stored in ``metadata`` (``None`` without a valid ``traceparent``):
    the parent of the span of the worker that handles it."""
    if not metadata or not isinstance(metadata.get("traceparent"), str):
        return None
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {k: str(metadata[k]) for k in TRACE_KEYS if k in metadata}
    context = TraceContextTextMapPropagator().extract(carrier)
    return context if get_current_span(context).get_span_context().is_valid else None


def links_to(metadatas: Iterable[Mapping[str, Any] | None]) -> list[Link]:
    """Span links to the distinct trace contexts stored in ``metadatas`` (one batch that
    serves many requests)."""
    from opentelemetry.trace import Link, get_current_span

    links: dict[tuple[int, int], Link] = {}
    for metadata in metadatas:
        context = stored_context(metadata)
        if context is not None:
            sc = get_current_span(context).get_span_context()
            links.setdefault((sc.trace_id, sc.span_id), Link(sc))
    return list(links.values())
