"""Periodic schedules: five-field cron expressions and fixed intervals.

A periodic schedule answers one question for the scheduler: *which period does ``now`` fall
in?* (:meth:`fire_time_at`). Every worker computes the same fire time for the same period, so a
unique key ``name@fire_time`` makes the period fire once however many workers run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "parse_schedule"]

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
    "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}  # fmt: skip
_MAX_DAYS = 366 * 5  # a valid expression fires at least once in five years (29 Feb)


class Schedule(Protocol):
    def fire_time_at(self, now: datetime) -> datetime | None:
        """The latest fire time ``<= now`` (the start of the current period)."""

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time ``> moment``."""


def _field(text: str, low: int, high: int, what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, end = _num(a), _num(b)
            else:
                start = _num(body)
                end = high if step_text else start
        except ValueError:
            raise ConfigurationError(f"cron {what} field {text!r} is not valid") from None
        if step < 1 or not (low <= start <= high and low <= end <= high) or start > end:
            raise ConfigurationError(f"cron {what} field {text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _num(text: str) -> int:
    text = text.strip().lower()
    return _NAMES[text] if text in _NAMES else int(text)


@dataclass(frozen=True)
class CronSchedule:
    """A five-field cron expression (minute hour day-of-month month day-of-week), in UTC.

    Supports ``*``, lists, ranges, steps, month/day names and ``@hourly``-style aliases; as in
    cron, when both day fields are restricted a day matching either one fires.

    Example::

        s = CronSchedule.parse("*/15 9-17 * * mon-fri")
        s.fire_time_at(datetime(2026, 1, 5, 9, 40, tzinfo=UTC))  # 09:30
    """

    expression: str
    minutes: frozenset[int] = field(repr=False)
    hours: frozenset[int] = field(repr=False)
    days: frozenset[int] = field(repr=False)
    months: frozenset[int] = field(repr=False)
    weekdays: frozenset[int] = field(repr=False)
    days_restricted: bool = field(repr=False, default=False)
    weekdays_restricted: bool = field(repr=False, default=False)

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        text = _ALIASES.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        if len(parts) != 5:
            raise ConfigurationError(
                f"cron expression {expression!r} needs 5 fields (minute hour day month weekday)"
            )
        weekdays = _field(parts[4], 0, 7, "day-of-week")
        weekdays = frozenset(0 if d == 7 else d for d in weekdays)
        return cls(
            expression=expression,
            minutes=_field(parts[0], 0, 59, "minute"),
            hours=_field(parts[1], 0, 23, "hour"),
            days=_field(parts[2], 1, 31, "day-of-month"),
            months=_field(parts[3], 1, 12, "month"),
            weekdays=weekdays,
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def fire_time_at(self, now: datetime) -> datetime | None:
        now = _utc(now).replace(second=0, microsecond=0)
        day = now.replace(hour=0, minute=0)
        for offset in range(_MAX_DAYS):
            if self._day_matches(day):
                limit = now if offset == 0 else day.replace(hour=23, minute=59)
                for hour in sorted(self.hours, reverse=True):
                    if hour > limit.hour:
                        continue
                    last_minute = limit.minute if hour == limit.hour else 59
                    candidates = [m for m in self.minutes if m <= last_minute]
                    if candidates:
                        return day.replace(hour=hour, minute=max(candidates))
            day -= timedelta(days=1)
        return None

    def next_after(self, moment: datetime) -> datetime:
        start = _utc(moment).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for offset in range(_MAX_DAYS):
            if self._day_matches(day):
                floor = start if offset == 0 else day
                for hour in sorted(self.hours):
                    if hour < floor.hour:
                        continue
                    first_minute = floor.minute if hour == floor.hour else 0
                    candidates = [m for m in self.minutes if m >= first_minute]
                    if candidates:
                        return day.replace(hour=hour, minute=min(candidates))
            day += timedelta(days=1)
        raise ConfigurationError(f"cron expression {self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """Fires every ``every``, aligned on ``anchor`` (the Unix epoch by default)."""

    every: timedelta
    anchor: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ConfigurationError("an interval schedule needs a positive interval")

    def fire_time_at(self, now: datetime) -> datetime | None:
        now = _utc(now)
        if now < self.anchor:
            return None
        return self.anchor + ((now - self.anchor) // self.every) * self.every

    def next_after(self, moment: datetime) -> datetime:
        moment = _utc(moment)
        if moment < self.anchor:
            return self.anchor
        return self.anchor + ((moment - self.anchor) // self.every + 1) * self.every


def parse_schedule(spec: str | timedelta | Schedule) -> Schedule:
    """A schedule from a cron string, an interval or an existing schedule."""
    if isinstance(spec, str):
        return CronSchedule.parse(spec)
    if isinstance(spec, timedelta):
        return IntervalSchedule(spec)
    return spec


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ConfigurationError(f"naive datetime {moment!r}: schedules need aware datetimes")
    return moment.astimezone(UTC)
