"""Render results JSON written by the runner as Markdown tables (for ``RESULTS.md``).

``uv run python -m benchmarks.report [benchmarks/results/<file>.json ...]`` (default: the newest
file). One table per workload: variant, median, min-max, ratio to the workload's baseline.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS_DIR


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(payloads: Iterable[dict[str, Any]]) -> str:
    lines: list[str] = []
    for payload in payloads:
        env = payload["environment"]
        busy = [b for b in payload.get("cpu_busy_percent_before_runs", []) if b >= 0]
        lines.append(f"Run {payload['when']}: {payload['runs']} runs, scale {payload['scale']}.")
        lines.append(
            "Environment: " + ", ".join(f"{k}={v}" for k, v in env.items() if v is not None)
        )
        if busy:
            lines.append(
                f"Whole-machine CPU busy before runs: median {sorted(busy)[len(busy) // 2]:.0f}%,"
                f" max {max(busy):.0f}%."
            )
        by_workload: dict[str, list[dict[str, Any]]] = {}
        for r in payload["results"]:
            by_workload.setdefault(r["workload"], []).append(r)
        for workload, rows in by_workload.items():
            unit = rows[0]["unit"]
            lines += ["", f"**{workload}** ({unit})", ""]
            lines.append("| variant | median | min - max | ratio to baseline |")
            lines.append("|---|---:|---:|---:|")
            for r in rows:
                ratio = (
                    "baseline"
                    if r["baseline"]
                    else (
                        f"{r['ratio_to_baseline']:.2f}x"
                        if r["ratio_to_baseline"] is not None
                        else ""
                    )
                )
                lines.append(
                    f"| {r['variant']} | {_fmt(r['median'])} | {_fmt(r['min'])} - "
                    f"{_fmt(r['max'])} | {ratio} |"
                )
            for c in payload.get("comparisons", []):
                if c["workload"] == workload:
                    lines.append(
                        f"| {c['numerator']} / {c['denominator']} | | | {c['ratio']:.2f}x |"
                    )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    files = args.files or sorted(RESULTS_DIR.glob("*.json"))[-1:]
    print(render(json.loads(f.read_text()) for f in files))


if __name__ == "__main__":
    main()
