"""Rows of the event log -> ``StoredEvent`` records and typed ``DomainEvent`` objects.

The one place that knows how a row read back is laid out: every read selects
``event_text_columns()`` — the fields of :data:`~..tables.events.EVENT_FIELDS` in that order,
payload and metadata as JSON text — and everything here is derived from that tuple by field
name, so reordering the columns cannot put a value under the wrong name.

This module and the execution seam are where the event store's hot-path techniques live:

- records are filled through the slots' own descriptors (a frozen dataclass's generated
  ``__init__`` pays ``object.__setattr__`` per field: ~1 µs more per event on a 1,000-event
  read);
- typed replay goes from the row to the event class in one loop, classes resolved once per
  type, envelope fields at their defaults left to pydantic (see :func:`hydrate_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from cqrs_ddd_core.domain.event_registry import EventTypeRegistry
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import SerializationError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy.serialization import json_loads
from cqrs_ddd_persistence_sqlalchemy.tables.events import EVENT_FIELDS

__all__ = ["FIELD_INDEX", "hydrate_rows", "row_to_event"]

#: ``StoredEvent`` field of each event column (the same name, but the stream's).
_FIELD_OF = {column: column for column in EVENT_FIELDS} | {"stream_id": "aggregate_id"}
#: ``StoredEvent`` field name -> its index in a row read back.
FIELD_INDEX: dict[str, int] = {_FIELD_OF[column]: i for i, column in enumerate(EVENT_FIELDS)}
if set(FIELD_INDEX) != set(StoredEvent.__slots__):  # pragma: no cover - a schema change
    raise RuntimeError("the event columns and StoredEvent's fields differ")

_JSON_FIELDS = frozenset({"payload", "metadata"})
_new = object.__new__
# (slot setter, row index, whether the value is JSON text), one per field, by name.
_PLAN: tuple[tuple[Callable[[Any, Any], None], int, bool], ...] = tuple(
    (StoredEvent.__dict__[name].__set__, i, name in _JSON_FIELDS) for name, i in FIELD_INDEX.items()
)


def _decode(text: Any) -> Any:
    if text is None or text == "":
        return {}
    return json_loads(text)


def row_to_event(row: Sequence[Any]) -> StoredEvent:
    """A stored event from a row of ``event_text_columns()``."""
    event = _new(StoredEvent)
    for set_, i, is_json in _PLAN:
        value = row[i]
        set_(event, _decode(value) if is_json else value)
    return event


_TYPE = FIELD_INDEX["event_type"]
_PAYLOAD = FIELD_INDEX["payload"]
_SCHEMA = FIELD_INDEX["schema_version"]
_METADATA = FIELD_INDEX["metadata"]
#: Envelope fields copied as they are (name, index); the ids are left out when ``None``.
_ENVELOPE = tuple(
    (name, FIELD_INDEX[name])
    for name in ("event_id", "occurred_at", "aggregate_id", "aggregate_type")
)
_OPTIONAL = tuple((name, FIELD_INDEX[name]) for name in ("correlation_id", "causation_id"))


def hydrate_rows(registry: EventTypeRegistry, rows: Iterable[Sequence[Any]]) -> list[DomainEvent]:
    """Typed events (upcast where needed) from rows of ``event_text_columns()``.

    One loop with the classes resolved once per type: on a 1,000-event replay a per-row call
    and its arguments were ~6 % of the time, and typed replay is bounded by pydantic's
    validation, not by the database. Envelope fields at their defaults are left out: pydantic
    fills a default for less than it costs to validate a passed value.
    """
    classes: dict[str, tuple[type[DomainEvent], int]] = {}
    events: list[DomainEvent] = []
    append = events.append
    for r in rows:
        event_type = r[_TYPE]
        known = classes.get(event_type)
        if known is None:
            cls = registry.resolve(event_type)
            known = classes[event_type] = (cls, cls.__schema_version__)
        cls, current = known
        schema_version = r[_SCHEMA]
        metadata = r[_METADATA]
        if metadata == "{}" or not metadata:
            metadata = None
        if schema_version != current:  # to upcast (or newer than this code): the long way
            envelope = {name: r[i] for name, i in (*_ENVELOPE, *_OPTIONAL)}
            envelope["metadata"] = {} if metadata is None else json_loads(metadata)
            append(
                registry.hydrate(
                    event_type,
                    json_loads(r[_PAYLOAD]),
                    schema_version=schema_version,
                    envelope=envelope,
                )
            )
            continue
        fields = json_loads(r[_PAYLOAD])
        for name, i in _ENVELOPE:
            fields[name] = r[i]
        if metadata is not None:
            fields["metadata"] = json_loads(metadata)
        for name, i in _OPTIONAL:
            value = r[i]
            if value is not None:
                fields[name] = value
        try:
            append(cls.model_validate(fields))
        except ValidationError as exc:
            raise SerializationError(f"cannot rebuild event {event_type!r}: {exc}") from exc
    return events
