"""Job model and backoff (no database)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pydantic import BaseModel, computed_field

from cqrs_ddd_advanced_core.jobs import JOB_FIELDS, BackgroundJob, Backoff, JobStatus


class Resize(BackgroundJob):
    __job_type__ = "images.resize"
    image: str
    width: int = 100


def test_job_type_arguments_and_defaults() -> None:
    job = Resize(image="a.png")
    assert Resize.job_type() == "images.resize"
    assert job.arguments() == {"image": "a.png", "width": 100}
    assert job.status is JobStatus.PENDING and job.attempts == 0 and job.max_attempts == 3
    assert "image" not in JOB_FIELDS and "priority" in JOB_FIELDS
    assert Resize(image="b").id != job.id


class Nested(BaseModel):
    at: datetime


class Rich(BackgroundJob):
    nested: Nested
    tags: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tag_count(self) -> int:
        return len(self.tags)


class NoArguments(BackgroundJob):
    pass


def test_job_ids_are_random_uuid4_texts() -> None:
    ids = {Resize(image="a").id for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_arguments_are_what_model_dump_gives_without_the_job_fields() -> None:
    job = Rich(nested=Nested(at=datetime(2026, 1, 2, 3, 4, 5)), tags=["a", "b"], priority=3)
    expected = job.model_dump(mode="json", exclude=set(JOB_FIELDS))
    assert (
        job.arguments()
        == expected
        == {
            "nested": {"at": "2026-01-02T03:04:05"},
            "tags": ["a", "b"],
            "tag_count": 2,
        }
    )
    assert NoArguments().arguments() == {}


def test_status_terminality() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        JobStatus.COMPLETED,
        JobStatus.DEAD,
        JobStatus.CANCELLED,
    }


def test_backoff() -> None:
    b = Backoff(base=2.0, factor=2.0, maximum=10.0)
    assert [b.seconds(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
    assert b.delay(2) == timedelta(seconds=4)
    jittered = Backoff(base=1.0, jitter=0.5)
    # One backoff for the library: jitter spreads the delay over ±jitter of itself.
    assert all(0.5 <= jittered.seconds(1) <= 1.5 for _ in range(50))
