"""A small, generic benchmark harness (see ``benchmarks/README.md``).

A benchmark module registers *workloads*; a workload compares *variants* (ours, a raw-driver
baseline, ...) that the harness runs interleaved, ``runs`` times each, after waiting for the
machine to be idle. Results are medians with min-max, printed as a table with ratios and written
as JSON to ``benchmarks/results/``.

Writing a workload::

    from benchmarks.harness import Context, Variant, workload

    @workload("demo.sleep", "sleeping in two ways", unit="ops/s")
    async def demo(ctx: Context) -> list[Variant]:
        async def ours() -> float:
            start = time.perf_counter()
            for _ in range(100):
                await asyncio.sleep(0)
            return 100 / (time.perf_counter() - start)   # one sample, in ``unit``

        return [Variant("ours", ours), Variant("baseline", ours, baseline=True)]

``Variant.run`` returns one sample (higher is better unless the workload says
``higher_is_better=False``). ``Variant.setup`` / ``teardown`` (optional) run once around all runs
(``setup=run`` warms up with one untimed sample: what it returns is ignored);
``Context.cleanup`` collects callbacks run after the workload.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "Context",
    "Result",
    "Variant",
    "WorkloadSpec",
    "environment",
    "registry",
    "run_workloads",
    "wait_for_idle",
    "workload",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PG_URL = os.environ.get(
    "CQRS_BENCH_POSTGRES_URL",
    os.environ.get("CQRS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
)


@dataclass
class Variant:
    """One contender of a workload. ``run()`` returns one sample in the workload's unit."""

    name: str
    run: Callable[[], Awaitable[float]]
    baseline: bool = False
    setup: Callable[[], Awaitable[object]] | None = None
    teardown: Callable[[], Awaitable[None]] | None = None


@dataclass
class Context:
    """What a workload gets: run count, database URL, size scale and cleanup callbacks."""

    runs: int = 5
    pg_url: str = PG_URL
    scale: float = 1.0
    #: Wait for an idle machine before each run (``--quick`` turns it off), at most this long.
    idle_wait: bool = True
    idle_timeout_s: float = 30.0
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def size(self, n: int) -> int:
        """``n`` scaled by ``--scale`` (at least 1)."""
        return max(1, int(n * self.scale))


@dataclass
class WorkloadSpec:
    name: str
    description: str
    unit: str
    build: Callable[[Context], Awaitable[list[Variant]]]
    higher_is_better: bool = True
    #: Extra ratios to print and store: (numerator variant, denominator variant).
    compare: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    workload: str
    variant: str
    unit: str
    samples: list[float]
    baseline: bool
    ratio_to_baseline: float | None = None
    #: The median over runs of this run's sample / the baseline's sample in the same run.
    paired_ratio_to_baseline: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


_REGISTRY: dict[str, WorkloadSpec] = {}


def workload(
    name: str,
    description: str,
    *,
    unit: str = "ops/s",
    higher_is_better: bool = True,
    compare: tuple[tuple[str, str], ...] = (),
) -> Callable[[Callable[[Context], Awaitable[list[Variant]]]], Callable[..., Any]]:
    """Register ``async def build(ctx) -> list[Variant]`` under ``name``.

    ``compare=(("a", "b"),)`` also reports median(a) / median(b).
    """

    def register(
        build: Callable[[Context], Awaitable[list[Variant]]],
    ) -> Callable[[Context], Awaitable[list[Variant]]]:
        if name in _REGISTRY:
            raise ValueError(f"workload {name!r} registered twice")
        _REGISTRY[name] = WorkloadSpec(
            name, description, unit, build, higher_is_better, tuple(compare)
        )
        return build

    return register


def registry() -> dict[str, WorkloadSpec]:
    return dict(_REGISTRY)


def select(patterns: list[str]) -> list[WorkloadSpec]:
    """Workloads whose name matches any glob pattern (all when no pattern is given)."""
    if not patterns:
        return list(_REGISTRY.values())
    chosen = [w for w in _REGISTRY.values() if any(fnmatch.fnmatch(w.name, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"no workload matches {patterns}; known: {sorted(_REGISTRY)}")
    return chosen


def wait_for_idle(*, max_busy_percent: float = 35.0, timeout_s: float = 30.0) -> float:
    """Wait until whole-machine CPU use drops below ``max_busy_percent`` (returns the last
    reading). Gives up after ``timeout_s`` — shared machines are never fully idle; the reading
    is recorded with the results."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - psutil is in the dev group
        return -1.0
    deadline = time.monotonic() + timeout_s
    busy = float(psutil.cpu_percent(interval=0.5))
    while busy > max_busy_percent and time.monotonic() < deadline:
        busy = float(psutil.cpu_percent(interval=0.5))
    return busy


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


async def _server_version(url: str) -> str | None:
    try:
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncio.wait_for(asyncpg.connect(dsn), 5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    except Exception as exc:  # reported, not fatal: the run may not need PostgreSQL
        return f"unreachable ({type(exc).__name__})"


async def environment(pg_url: str = PG_URL) -> dict[str, Any]:
    """CPU count, interpreter, library and server versions (printed and stored with results)."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlalchemy": _version("sqlalchemy"),
        "asyncpg": _version("asyncpg"),
        "psycopg": _version("psycopg"),
        "aiosqlite": _version("aiosqlite"),
        "orjson": _version("orjson"),
        "postgresql": await _server_version(pg_url),
        "uvloop": _version("uvloop"),
        # peers measured against (issue 18; eventsourcing for the event store)
        "eventsourcing": _version("eventsourcing"),
        "advanced-alchemy": _version("advanced-alchemy"),
        # Job-queue peers (``bench_job_peers``), when installed.
        "pgqueuer": _version("pgqueuer"),
        "procrastinate": _version("procrastinate"),
    }


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def paired_ratio(samples: list[float], reference: list[float]) -> float:
    """The median over runs of ``samples[i] / reference[i]``: both taken in the same run, so a
    machine that is slower for a while (a shared host's CPU speed drifts by up to 2x over
    minutes here) slows both sides of each quotient alike. The ratio of the two medians takes
    its samples from different runs and moves with that drift; both are reported."""
    return statistics.median(s / r for s, r in zip(samples, reference, strict=True))


async def run_workloads(
    specs: list[WorkloadSpec], ctx: Context, *, write_json: bool = True
) -> list[Result]:
    """Run ``specs`` (variants interleaved per run), print a table, write JSON."""
    env = await environment(ctx.pg_url)
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    all_results: list[Result] = []
    comparisons: list[dict[str, Any]] = []
    idle_readings: list[float] = []
    for spec in specs:
        print(f"\n== {spec.name}: {spec.description} ({spec.unit}, {ctx.runs} runs)", flush=True)
        variants = await spec.build(ctx)
        samples: dict[str, list[float]] = {v.name: [] for v in variants}
        try:
            for v in variants:
                if v.setup is not None:
                    await v.setup()
            for run in range(ctx.runs):
                idle_readings.append(
                    wait_for_idle(timeout_s=ctx.idle_timeout_s) if ctx.idle_wait else -1.0
                )
                # Rotate the order each run so no variant always goes first (warm caches, load).
                order = variants[run % len(variants) :] + variants[: run % len(variants)]
                for v in order:
                    samples[v.name].append(float(await v.run()))
        finally:
            for v in variants:
                if v.teardown is not None:
                    await v.teardown()
            while ctx.cleanup:
                await ctx.cleanup.pop()()
        base = next((v for v in variants if v.baseline), None)
        base_median = statistics.median(samples[base.name]) if base else None
        for v in variants:
            result = Result(spec.name, v.name, spec.unit, samples[v.name], v.baseline)
            if base is not None and base_median:
                ratio = result.median / base_median
                result.ratio_to_baseline = ratio if spec.higher_is_better else 1 / ratio
                paired = paired_ratio(samples[v.name], samples[base.name])
                result.paired_ratio_to_baseline = paired if spec.higher_is_better else 1 / paired
            all_results.append(result)
            ratio_text = (
                f"  {result.ratio_to_baseline:.2f}x baseline"
                f" (paired {result.paired_ratio_to_baseline:.2f}x)"
                if result.ratio_to_baseline is not None
                and result.paired_ratio_to_baseline is not None
                and not v.baseline
                else ("  (baseline)" if v.baseline else "")
            )
            print(
                f"  {v.name:<34} median {_fmt(result.median):>10}  "
                f"[{_fmt(min(result.samples))} - {_fmt(max(result.samples))}]{ratio_text}",
                flush=True,
            )
        for a, b in spec.compare:
            if a not in samples or b not in samples:
                continue  # a variant left out of this run (an optional driver not installed)
            ratio = statistics.median(samples[a]) / statistics.median(samples[b])
            paired = paired_ratio(samples[a], samples[b])
            comparisons.append(
                {
                    "workload": spec.name,
                    "numerator": a,
                    "denominator": b,
                    "ratio": ratio,
                    "paired_ratio": paired,
                }
            )
            print(f"  {a} / {b} = {ratio:.2f}x (paired {paired:.2f}x)", flush=True)
    if write_json and all_results:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        names = "+".join(sorted({r.workload.split(".")[0] for r in all_results}))
        path = RESULTS_DIR / f"{stamp}-{names}.json"
        payload = {
            "when": stamp,
            "environment": env,
            "runs": ctx.runs,
            "scale": ctx.scale,
            "cpu_busy_percent_before_runs": idle_readings,
            "comparisons": comparisons,
            "results": [
                {**asdict(r), "median": r.median, "min": min(r.samples), "max": max(r.samples)}
                for r in all_results
            ],
        }
        path.write_text(json.dumps(payload, indent=2))
        print(f"\nresults written to {path}", flush=True)
    return all_results
