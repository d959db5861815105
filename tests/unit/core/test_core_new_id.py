"""``new_id``: canonical random UUIDs (the default event and message ids)."""

from __future__ import annotations

import uuid

from cqrs_ddd_core import StoredEvent
from cqrs_ddd_core.domain.events import new_id
from cqrs_ddd_core.ports.outbox import OutboxMessage


def test_new_id_is_a_canonical_version_4_uuid() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lower-case 8-4-4-4-12 form
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_default_ids_use_it() -> None:
    for text in (
        StoredEvent(event_type="E", aggregate_id="a").event_id,
        OutboxMessage(event_type="E", payload={}).message_id,
    ):
        assert uuid.UUID(text).version == 4
