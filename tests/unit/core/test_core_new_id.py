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


def test_every_variant_digit_and_version_position_is_set() -> None:
    # 4,000 ids cover every value of the random digit under the variant bits many times over
    ids = [new_id() for _ in range(4000)]
    assert {text[14] for text in ids} == {"4"}
    assert {text[19] for text in ids} == set("89ab")
    assert len({text[15] for text in ids}) == 16  # the rest stays random


def test_threads_never_share_an_id() -> None:
    import threading

    out: list[list[str]] = [[] for _ in range(8)]

    def draw(bucket: list[str]) -> None:
        for _ in range(3000):
            bucket.append(new_id())

    threads = [threading.Thread(target=draw, args=(bucket,)) for bucket in out]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for bucket in out for i in bucket]
    assert len(set(every)) == len(every) == 8 * 3000


def test_a_forked_child_does_not_reuse_the_parents_drawn_ids() -> None:
    import os

    new_id()  # the parent has ids drawn ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.write(write, "\n".join(new_id() for _ in range(200)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent_ids = {new_id() for _ in range(200)}
    assert len(child_ids) == 200
    assert not child_ids & parent_ids
