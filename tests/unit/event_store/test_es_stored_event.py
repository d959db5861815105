"""``StoredEvent.from_domain_event``: the record of a domain event, and the library error (not a
bare ``ValueError``) for an event that names no stream."""

from __future__ import annotations

import json

import pytest

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import CQRSDDDError, InvalidValueError
from cqrs_ddd_core.ports.event_store import StoredEvent


class StoredEventUnitDeposited(DomainEvent):
    amount: int


def test_from_domain_event_keeps_envelope_and_payload() -> None:
    event = StoredEventUnitDeposited(amount=5, aggregate_id="acc-1", correlation_id="c-1")
    stored = StoredEvent.from_domain_event(event, version=3, tenant_id="t-1")
    assert stored.event_type == "StoredEventUnitDeposited"
    assert (stored.aggregate_id, stored.version, stored.tenant_id) == ("acc-1", 3, "t-1")
    assert stored.event_id == event.event_id and stored.correlation_id == "c-1"
    assert stored.payload["amount"] == 5


def test_from_domain_event_without_aggregate_id_raises_the_library_error() -> None:
    event = StoredEventUnitDeposited(amount=5)
    with pytest.raises(InvalidValueError) as info:
        StoredEvent.from_domain_event(event)
    error = info.value
    assert "StoredEventUnitDeposited has no aggregate_id" in str(error)
    assert error.path == "aggregate_id"
    # one error tree for library callers, and still a ValueError for code that caught that
    assert isinstance(error, CQRSDDDError)
    assert isinstance(error, ValueError)
    assert not error.retryable


# -- the hand-written constructors: same record, same dataclass behaviour ------------------------
_EVERY_FIELD = (
    "event_type",
    "aggregate_id",
    "payload",
    "event_id",
    "aggregate_type",
    "version",
    "schema_version",
    "metadata",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "tenant_id",
    "position",
)


def test_defaults_are_fresh_per_record() -> None:
    a = StoredEvent(event_type="T", aggregate_id="s")
    b = StoredEvent(event_type="T", aggregate_id="s")
    assert a.payload == {} and a.metadata == {}
    assert a.payload is not b.payload and a.metadata is not b.metadata
    assert a.event_id != b.event_id and len(a.event_id) == 36
    assert a.occurred_at.utcoffset() is not None and a.occurred_at.utcoffset().total_seconds() == 0
    assert (a.version, a.position, a.schema_version, a.aggregate_type) == (None, None, 1, None)
    # None asks for the default, like leaving the argument out
    c = StoredEvent(event_type="T", aggregate_id="s", payload=None, event_id=None, metadata=None)
    assert c.payload == {} and c.metadata == {} and len(c.event_id) == 36


def test_record_is_frozen_and_compares_by_value() -> None:
    import dataclasses

    a = StoredEvent(event_type="T", aggregate_id="s", payload={"x": 1}, event_id="e-1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.version = 3  # type: ignore[misc]
    same = StoredEvent(
        event_type="T",
        aggregate_id="s",
        payload={"x": 1},
        event_id="e-1",
        occurred_at=a.occurred_at,
    )
    assert a == same
    assert dataclasses.replace(a, version=4) == StoredEvent(
        event_type="T",
        aggregate_id="s",
        payload={"x": 1},
        event_id="e-1",
        occurred_at=a.occurred_at,
        version=4,
    )
    assert tuple(f.name for f in dataclasses.fields(StoredEvent)) == _EVERY_FIELD
    assert "version=None" in repr(a)


def test_positioned_copies_every_field_and_sets_version_and_position() -> None:
    a = StoredEvent(
        event_type="T",
        aggregate_id="s",
        payload={"x": 1},
        aggregate_type="A",
        schema_version=2,
        metadata={"m": 1},
        correlation_id="c",
        causation_id="k",
        tenant_id="t",
    )
    b = a.positioned(7, 99)
    assert (b.version, b.position) == (7, 99)
    assert (a.version, a.position) == (None, None)  # the original is untouched
    for name in _EVERY_FIELD[:-1]:
        if name != "version":
            assert getattr(b, name) == getattr(a, name), name


def test_rows_map_to_records_by_field_name() -> None:
    """A row of ``event_text_columns()`` becomes the record with each value under its own
    field (the mapping is derived from the column names, not written out by position)."""
    from cqrs_ddd_persistence_sqlalchemy.eventstore.mapping import FIELD_INDEX, row_to_event

    a = StoredEvent(
        event_type="T", aggregate_id="s", payload={"x": 1}, version=2, position=5,
        metadata={"m": 1}, correlation_id="c", causation_id="d", tenant_id="t",
        aggregate_type="A", schema_version=3,
    )  # fmt: skip
    row: list[object] = [None] * len(FIELD_INDEX)
    for name, i in FIELD_INDEX.items():
        value = getattr(a, name)
        row[i] = json.dumps(value) if name in ("payload", "metadata") else value
    assert row_to_event(row) == a
    assert set(FIELD_INDEX) == set(_EVERY_FIELD)


# -- drafts (``cqrs_ddd_core.ports.drafts``): the record itself, whichever way it was filled -----
def _every_value(record: object) -> tuple[object, ...]:
    return tuple(getattr(record, name) for name in _EVERY_FIELD)


def test_a_drafted_record_is_the_record_in_every_respect() -> None:
    import copy
    import dataclasses
    import pickle

    a = StoredEvent(event_type="T", aggregate_id="s", payload={"x": 1}, event_id="e-1")
    for record in (a, a.positioned(1, 2)):
        assert type(record) is StoredEvent
        assert isinstance(record, StoredEvent) and dataclasses.is_dataclass(record)
        assert not hasattr(record, "__dict__")  # still slots only
        assert pickle.loads(pickle.dumps(record)) == record
        assert copy.copy(record) == record and copy.deepcopy(record) == record
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.position = 3  # type: ignore[misc]
    # the generated dataclass machinery builds the same record (its own __init__ is not ours)
    assert a.positioned(1, 2) == dataclasses.replace(a, version=1, position=2)


@pytest.mark.parametrize("with_dict", [False, True], ids=["extra slot", "__dict__"])
def test_subclasses_are_filled_field_by_field(with_dict: bool) -> None:
    """A subclass has another layout (a slot of its own, or a ``__dict__``): no draft fits it,
    so ``__init__`` and ``positioned`` keep its class and fill StoredEvent's fields."""
    import dataclasses

    if with_dict:

        class Sub(StoredEvent):  # no __slots__: instances get a __dict__
            pass

    else:

        @dataclasses.dataclass(frozen=True, slots=True, kw_only=True, init=False)
        class Sub(StoredEvent):  # type: ignore[no-redef]
            extra: int = 0

    a = Sub(event_type="T", aggregate_id="s", payload={"x": 1}, tenant_id="t")
    b = a.positioned(3, 4)
    assert type(a) is Sub and type(b) is Sub
    assert (b.version, b.position, b.tenant_id, b.payload) == (3, 4, "t", {"x": 1})
    plain = StoredEvent(
        event_type="T", aggregate_id="s", payload={"x": 1}, tenant_id="t",
        event_id=a.event_id, occurred_at=a.occurred_at,
    )  # fmt: skip
    assert _every_value(a) == _every_value(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.version = 5  # type: ignore[misc]


def test_outbox_messages_are_drafted_too() -> None:
    import dataclasses
    import pickle

    from cqrs_ddd_core.ports.outbox import OutboxMessage

    m = OutboxMessage(event_type="Deposited", payload={"a": 1}, partition_key="k")
    assert type(m) is OutboxMessage and not hasattr(m, "__dict__")
    assert (m.payload, m.partition_key, m.retry_count, m.published_at) == ({"a": 1}, "k", 0, None)
    assert len(m.message_id) == 36 and m.created_at.utcoffset() is not None
    assert pickle.loads(pickle.dumps(m)) == m
    assert dataclasses.replace(m, retry_count=2).retry_count == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.error = "x"  # type: ignore[misc]

    class Sub(OutboxMessage):
        pass

    s = Sub(event_type="E", message_id="m-1")
    assert type(s) is Sub and (s.event_type, s.message_id, s.payload) == ("E", "m-1", {})
