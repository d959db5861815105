"""Job classes shared by the job tests (also imported by subprocess workers)."""

from __future__ import annotations

from typing import Any

from cqrs_ddd_advanced_core.jobs import BackgroundJob, Backoff, JobContext


class EchoJob(BackgroundJob):
    text: str = ""

    async def execute(self, ctx: JobContext) -> Any:
        await ctx.progress(0.5, "half way")
        return {"echo": self.text}


class FlakyJob(BackgroundJob):
    """Fails ``failures`` times (counted by the test's handler), then succeeds."""

    __backoff__ = Backoff(base=0.2, factor=2.0, maximum=5.0)
    failures: int = 2


class SlowJob(BackgroundJob):
    seconds: float = 5.0


class EffectJob(BackgroundJob):
    """Used by the multi-process test: the handler records one effect row per execution."""

    n: int = 0
