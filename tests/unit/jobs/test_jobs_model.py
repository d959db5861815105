"""Job model and backoff (no database)."""

from __future__ import annotations

from datetime import timedelta

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
