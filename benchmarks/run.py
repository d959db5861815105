"""Run registered benchmark workloads: ``uv run python -m benchmarks.run [PATTERN ...]``.

Examples::

    uv run python -m benchmarks.run --list
    uv run python -m benchmarks.run es.*                 # the event store workloads
    uv run python benchmarks/run.py es.append_100 --runs 7
    uv run python -m benchmarks.run --scale 0.2 --no-json # a smaller run
    uv run python -m benchmarks.run --quick               # smoke: tiny sizes, 3 runs, no wait

Every ``benchmarks/bench_*.py`` module that imports ``benchmarks.harness`` is loaded and its
``@workload`` functions registered; patterns are globs over workload names.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # ``python benchmarks/run.py`` from the repo root
    sys.path.insert(0, str(HERE.parent))

from benchmarks import harness  # noqa: E402


def load_modules() -> list[str]:
    loaded = []
    for path in sorted(HERE.glob("bench_*.py")):
        if "benchmarks.harness" not in path.read_text():
            continue  # not (yet) written against the harness
        name = f"benchmarks.{path.stem}"
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
            continue
        loaded.append(name)
    return loaded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", help="workload name globs (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (>= 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply workload sizes")
    parser.add_argument("--url", default=harness.PG_URL, help="PostgreSQL URL")
    parser.add_argument("--list", action="store_true", help="list workloads and exit")
    parser.add_argument("--no-json", action="store_true", help="do not write results JSON")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        help="seconds to wait at most for an idle machine before each run (default 30)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: --runs 3 --scale 0.02 --no-json, no idle wait (numbers mean nothing)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.no_json = 3, True
        if args.scale == 1.0:
            args.scale = 0.02
    load_modules()
    if args.list:
        for spec in harness.registry().values():
            print(f"{spec.name:<28} {spec.description} [{spec.unit}]")
        return
    if args.runs < 3:
        parser.error("--runs must be at least 3 (medians of fewer runs mean little)")
    specs = harness.select(args.patterns)
    ctx = harness.Context(
        runs=args.runs,
        pg_url=args.url,
        scale=args.scale,
        idle_wait=not args.quick,
        idle_timeout_s=args.idle_timeout,
    )
    asyncio.run(harness.run_workloads(specs, ctx, write_json=not args.no_json))


if __name__ == "__main__":
    main()
