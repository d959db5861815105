"""``StoredEvent.from_domain_event``: the record of a domain event, and the library error (not a
bare ``ValueError``) for an event that names no stream."""

from __future__ import annotations

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
