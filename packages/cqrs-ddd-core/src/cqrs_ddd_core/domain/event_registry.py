"""Event type registry: type name <-> class, and upcasters between schema versions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import (
    EventTypeConflictError,
    SerializationError,
    UnknownEventTypeError,
)

__all__ = ["EventTypeRegistry", "Upcaster", "default_registry"]

#: Turns a payload of schema version N into one of version N + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventTypeRegistry:
    """Maps event type names to ``DomainEvent`` classes and upgrades old payloads.

    Example::

        registry = EventTypeRegistry()
        registry.register(OrderCreated)
        registry.add_upcaster("OrderCreated", 1, lambda p: {**p, "currency": "EUR"})
        event = registry.hydrate("OrderCreated", payload, schema_version=1, envelope={...})
    """

    def __init__(self) -> None:
        self._types: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._lock = threading.Lock()

    def register(self, cls: type[DomainEvent], name: str | None = None) -> type[DomainEvent]:
        """Register ``cls`` under ``name`` (default: its ``__event_type__``)."""
        key = name or cls.__event_type__
        with self._lock:
            current = self._types.get(key)
            if current is not None and current is not cls and _origin(current) != _origin(cls):
                raise EventTypeConflictError(
                    f"event type {key!r} is already registered to {_origin(current)}, "
                    f"cannot register {_origin(cls)}"
                )
            self._types[key] = cls
        return cls

    def resolve(self, name: str) -> type[DomainEvent]:
        """The class registered under ``name``; ``UnknownEventTypeError`` if none."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventTypeError(name, self._types) from None

    def get(self, name: str) -> type[DomainEvent] | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def add_upcaster(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register a function turning payloads of ``from_version`` into ``from_version + 1``."""
        self._upcasters[(event_type, from_version)] = upcaster

    def upcast(
        self, event_type: str, payload: Mapping[str, Any], schema_version: int
    ) -> tuple[dict[str, Any], int]:
        """Apply upcasters until the class's current schema version is reached."""
        data = dict(payload)
        cls = self._types.get(event_type)
        target = cls.__schema_version__ if cls is not None else schema_version
        version = schema_version
        while version < target:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise SerializationError(
                    f"no upcaster for {event_type!r} from schema version {version} to {target}"
                )
            data = step(data)
            version += 1
        return data, version

    def hydrate(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        schema_version: int = 1,
        envelope: Mapping[str, Any] | None = None,
    ) -> DomainEvent:
        """Build a typed event from a stored payload (upcast first) and its envelope fields."""
        cls = self.resolve(event_type)
        if schema_version >= cls.__schema_version__:
            # Current schema (the common case on replay): nothing to upcast, no payload copy.
            fields = {**payload, **(envelope or {}), "version": schema_version}
        else:
            data, version = self.upcast(event_type, payload, schema_version)
            fields = {**data, **(envelope or {}), "version": version}
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise SerializationError(f"cannot rebuild event {event_type!r}: {exc}") from exc

    def hydrate_row(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        schema_version: int,
        event_id: str,
        occurred_at: Any,
        aggregate_id: str | None,
        aggregate_type: str | None,
        metadata: Mapping[str, Any] | None,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> DomainEvent:
        """:meth:`hydrate` for a row just read, with the envelope as arguments: one field dict
        per event and no envelope dict or payload copy in between (on a 1,000-event replay the
        garbage collections extra containers trigger cost more than building them)."""
        cls = self.resolve(event_type)
        if schema_version < cls.__schema_version__:
            return self.hydrate(
                event_type,
                payload,
                schema_version=schema_version,
                envelope={
                    "event_id": event_id,
                    "occurred_at": occurred_at,
                    "aggregate_id": aggregate_id,
                    "aggregate_type": aggregate_type,
                    "metadata": metadata or {},
                    "correlation_id": correlation_id,
                    "causation_id": causation_id,
                },
            )
        # One short-lived dict. Writing into ``payload`` instead looks cheaper but makes the
        # row's payload dict hold a container (metadata), so the garbage collector starts
        # tracking every row of the page for as long as the page lives: measured slower.
        # Envelope fields at their defaults are left out: pydantic fills a default for less
        # than it costs to validate a passed value (~4 % of a replay each for the None ids and
        # the empty metadata, measured), and ``model_post_init`` sets the current ``version``.
        fields = {
            **payload,
            "event_id": event_id,
            "occurred_at": occurred_at,
            "aggregate_id": aggregate_id,
            "aggregate_type": aggregate_type,
        }
        if metadata:
            fields["metadata"] = metadata
        if correlation_id is not None:
            fields["correlation_id"] = correlation_id
        if causation_id is not None:
            fields["causation_id"] = causation_id
        if schema_version != cls.__schema_version__:
            fields["version"] = schema_version
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise SerializationError(f"cannot rebuild event {event_type!r}: {exc}") from exc


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


#: The registry every ``DomainEvent`` subclass registers itself into.
default_registry = EventTypeRegistry()
