"""Scheduled commands: statuses, the claimed-row view and periodic schedule definitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cqrs_ddd_advanced_core.scheduling.cron import Schedule, parse_schedule

__all__ = ["PeriodicCommand", "ScheduledCommand", "ScheduledCommandStatus"]


class ScheduledCommandStatus(StrEnum):
    """Lifecycle of a scheduled command. Stored as its string value.

    PENDING covers "not due yet" and "waiting for a retry" (``due_at`` says when).
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DISPATCHED = "DISPATCHED"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class ScheduledCommand:
    """One scheduled command as stored (returned by the scheduler, never an ORM row)."""

    id: int
    command_type: str
    payload: dict[str, Any]
    due_at: datetime
    status: ScheduledCommandStatus
    attempts: int
    max_attempts: int
    key: str | None = None
    error: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class PeriodicCommand:
    """A command fired once per period of ``schedule`` (cron string, interval or schedule).

    Example::

        PeriodicCommand("nightly-report", "0 2 * * *", "BuildReport", {"kind": "daily"})
        PeriodicCommand("heartbeat", timedelta(minutes=5), "Ping")
    """

    name: str
    schedule: str | timedelta | Schedule
    command_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    max_attempts: int = 3

    @property
    def parsed(self) -> Schedule:
        return parse_schedule(self.schedule)

    def key_for(self, fire_time: datetime) -> str:
        """The unique key of the period starting at ``fire_time``."""
        return f"periodic:{self.name}@{fire_time.isoformat()}"

    def due(self, now: datetime, *, catch_up: timedelta | None = None) -> datetime | None:
        """The fire time of the current period, unless it is older than ``catch_up``."""
        fire = self.parsed.fire_time_at(now)
        if fire is None or (catch_up is not None and now - fire > catch_up):
            return None
        return fire
