"""Command scheduling (persistence-free): statuses, periodic schedules, cron parsing."""

from cqrs_ddd_advanced_core.scheduling.cron import CronSchedule as CronSchedule
from cqrs_ddd_advanced_core.scheduling.cron import IntervalSchedule as IntervalSchedule
from cqrs_ddd_advanced_core.scheduling.cron import Schedule as Schedule
from cqrs_ddd_advanced_core.scheduling.cron import parse_schedule as parse_schedule
from cqrs_ddd_advanced_core.scheduling.model import PeriodicCommand as PeriodicCommand
from cqrs_ddd_advanced_core.scheduling.model import ScheduledCommand as ScheduledCommand
from cqrs_ddd_advanced_core.scheduling.model import (
    ScheduledCommandStatus as ScheduledCommandStatus,
)
