"""Rich renderings shared by several commands."""

from __future__ import annotations

from typing import Any

from rich.table import Table as RichTable

__all__ = ["format_seconds", "queue_stats_rows", "queue_stats_table"]


def format_seconds(seconds: float | None) -> str:
    """``1.2s`` / ``3m 04s`` / ``2h 05m`` / ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def queue_stats_table(
    title: str, stats: Any, *, done_label: str = "done", caption: str | None = None
) -> RichTable:
    """A two-column table of a durable queue's ``QueueStats``."""
    width = len(caption) if caption else None
    table = RichTable(title=title, caption=caption, show_header=False, min_width=width)
    table.add_column("state")
    table.add_column("count", justify="right")
    for label, value in queue_stats_rows(stats, done_label=done_label):
        table.add_row(label, value)
    return table


def queue_stats_rows(stats: Any, *, done_label: str = "done") -> list[tuple[str, str]]:
    """``(state, count)`` lines of a durable queue's ``QueueStats`` (the terminal's table and
    the operations page show the same)."""
    return [
        ("pending (due)", str(stats.pending - stats.leased - stats.scheduled)),
        ("leased (in flight)", str(stats.leased)),
        ("scheduled / backing off", str(stats.scheduled)),
        (done_label, str(stats.done)),
        ("dead", str(stats.dead)),
        ("oldest due lag", format_seconds(stats.lag_seconds)),
    ]
