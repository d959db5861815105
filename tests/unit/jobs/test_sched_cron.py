"""Cron and interval schedules, periodic commands (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cqrs_ddd_advanced_core.scheduling import (
    CronSchedule,
    IntervalSchedule,
    PeriodicCommand,
    parse_schedule,
)
from cqrs_ddd_core.errors import ConfigurationError


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "now", "fire", "nxt"),
    [
        ("*/15 * * * *", at(2026, 1, 5, 9, 40, 12), at(2026, 1, 5, 9, 30), at(2026, 1, 5, 9, 45)),
        ("0 2 * * *", at(2026, 1, 5, 1, 59), at(2026, 1, 4, 2, 0), at(2026, 1, 5, 2, 0)),
        ("0 2 * * *", at(2026, 1, 5, 2, 0), at(2026, 1, 5, 2, 0), at(2026, 1, 6, 2, 0)),
        ("30 9-17 * * mon-fri", at(2026, 1, 3, 12, 0), at(2026, 1, 2, 17, 30),
         at(2026, 1, 5, 9, 30)),  # Saturday -> Friday / Monday
        ("@hourly", at(2026, 3, 1, 0, 0), at(2026, 3, 1, 0, 0), at(2026, 3, 1, 1, 0)),
        ("0 0 29 2 *", at(2026, 6, 1), at(2024, 2, 29), at(2028, 2, 29)),
        ("0 0 1 * 0", at(2026, 2, 2), at(2026, 2, 1), at(2026, 2, 8)),  # dom OR dow
        ("59 23 31 dec *", at(2026, 12, 31, 23, 59, 59), at(2026, 12, 31, 23, 59),
         at(2027, 12, 31, 23, 59)),
    ],
)  # fmt: skip
def test_cron_fire_time_and_next(expr: str, now: datetime, fire: datetime, nxt: datetime) -> None:
    schedule = CronSchedule.parse(expr)
    assert schedule.fire_time_at(now) == fire
    assert schedule.next_after(now) == nxt


@pytest.mark.parametrize(
    "expr", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "a * * * *"]
)
def test_bad_cron_expressions(expr: str) -> None:
    with pytest.raises(ConfigurationError):
        CronSchedule.parse(expr)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        CronSchedule.parse("* * * * *").fire_time_at(datetime(2026, 1, 1))


def test_interval_schedule_and_periodic_keys() -> None:
    every = IntervalSchedule(timedelta(minutes=5))
    assert every.fire_time_at(at(2026, 1, 1, 10, 7, 30)) == at(2026, 1, 1, 10, 5)
    assert every.next_after(at(2026, 1, 1, 10, 5)) == at(2026, 1, 1, 10, 10)
    assert parse_schedule(timedelta(minutes=5)) == every
    with pytest.raises(ConfigurationError):
        IntervalSchedule(timedelta(0))
    item = PeriodicCommand("ping", timedelta(minutes=5), "Ping")
    now = at(2026, 1, 1, 10, 7)
    fire = item.due(now)
    assert fire == at(2026, 1, 1, 10, 5)
    assert item.key_for(fire) == "periodic:ping@2026-01-01T10:05:00+00:00"
    assert item.due(now, catch_up=timedelta(minutes=1)) is None
