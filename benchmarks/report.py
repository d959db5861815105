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

from benchmarks._pg import OURS_PSYCOPG
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
            lines.append("| variant | median | min - max | ratio to baseline | paired |")
            lines.append("|---|---:|---:|---:|---:|")
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
                    f"{_fmt(r['max'])} | {ratio} | {_paired(r.get('paired_ratio_to_baseline'))} |"
                )
            for c in payload.get("comparisons", []):
                if c["workload"] == workload:
                    lines.append(
                        f"| {c['numerator']} / {c['denominator']} | | | {c['ratio']:.2f}x "
                        f"| {_paired(c.get('paired_ratio'))} |"
                    )
        lines.append("")
    return "\n".join(lines)


def _paired(ratio: float | None) -> str:
    """The median of same-run quotients (results written before it was recorded have none)."""
    return "" if ratio is None else f"{ratio:.2f}x"


#: The issue's target table: (row, target text, threshold, [(workload, ours variant), ...]).
TARGETS: list[tuple[str, str, float, list[tuple[str, str]]]] = [
    ("append 1 event / txn", ">= 0.80", 0.80, [("es.append_1", "ours"), ("peer.append_1", "ours")]),
    (
        "append 100 events / txn",
        ">= 0.90",
        0.90,
        [("es.append_100", "ours"), ("peer.append_100", "ours")],
    ),
    (
        "read 1,000-event stream, typed",
        ">= 0.85",
        0.85,
        [("es.read_1000", "ours"), ("peer.read_1000", "ours")],
    ),
    (
        "8 writers, commit-safe vs bigserial",
        ">= 0.80",
        0.80,
        [("es.writers_8", "ours commit-safe"), ("peer.writers_8", "ours")],
    ),
    (
        "outbox claim+publish+ack, 4 workers, batch 50",
        ">= 0.80",
        0.80,
        [("queue.outbox_batch50", "ours (OutboxRelay)")],
    ),
    (
        "jobs claim+complete, 4 workers, batch 50",
        ">= 0.80",
        0.80,
        [("jobs.claim_complete_50", "ours")],
    ),
    ("repository get vs hand-written ORM", ">= 0.83 (<= 1.2x time)", 0.83, [("repo.get", "ours")]),
    # Job-queue peers (issue 18): ours over PgQueuer, the baseline of ``bench_job_peers``.
    ("job enqueue one by one vs PgQueuer", ">= 1.0", 1.0, [("jobs.peers_enqueue_1", "ours")]),
    ("job enqueue batch vs PgQueuer", ">= 1.0", 1.0, [("jobs.peers_enqueue_batch", "ours")]),
    (
        "5,000 jobs, default JobWorker vs PgQueuer's default, 1 / 4 processes",
        ">= 1.0",
        1.0,
        [("jobs.peers_e2e_1proc", "ours (defaults)"), ("jobs.peers_e2e_4proc", "ours (defaults)")],
    ),
    ("repository add vs hand-written ORM", ">= 0.83 (<= 1.2x time)", 0.83, [("repo.add", "ours")]),
    # issue 18 (ours / advanced-alchemy is printed with each peers.* table)
    (
        "seed batch loop, 100 adds in one UoW vs ORM add_all",
        ">= 0.90",
        0.90,
        [("peers.add_100", "ours")],
    ),
    (
        "20 loaded aggregates saved in one UoW vs ORM",
        ">= 0.90",
        0.90,
        [("peers.update_20", "ours")],
    ),
]

_PEERS = ("eventsourcing Application", "eventsourcing recorder")


def targets(payloads: Iterable[dict[str, Any]]) -> str:
    """The target table: ratio to baseline of ours (defaults), ours with SQLAlchemy's pre-ping
    (the former default), peers; and the same workload on psycopg 3, ours over its raw psycopg
    (or hand-written ORM on psycopg) in the same run (not part of "met": no target yet)."""
    ratios: dict[tuple[str, str], float] = {}
    on_psycopg: dict[str, float] = {}
    for payload in payloads:
        for r in payload["results"]:
            if r["ratio_to_baseline"] is not None:
                ratios[(r["workload"], r["variant"])] = r["ratio_to_baseline"]
        for c in payload.get("comparisons", []):
            if c["numerator"] == OURS_PSYCOPG:
                on_psycopg[c["workload"]] = c["ratio"]
    lines = [
        "| workload | target | ours (library defaults) | ours, SQLAlchemy `pool_pre_ping=True` "
        "| eventsourcing Application / recorder | met | psycopg 3: ours / raw psycopg |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, text, threshold, sources in TARGETS:
        ours, sa_ping, peers = [], [], []
        psycopg = [f"{on_psycopg[w]:.2f} (`{w}`)" for w, _ in sources if w in on_psycopg]
        for workload, variant in sources:
            if (workload, variant) in ratios:
                ours.append(f"{ratios[(workload, variant)]:.2f} (`{workload}`)")
            for name in (f"{variant}, pool_pre_ping=True", "ours, pool_pre_ping=True"):
                if (workload, name) in ratios:
                    sa_ping.append(f"{ratios[(workload, name)]:.2f} (`{workload}`)")
                    break
            found = [f"{ratios[(workload, p)]:.2f}" for p in _PEERS if (workload, p) in ratios]
            if found:
                peers.append(" / ".join(found))
        best = [ratios[(w, v)] for w, v in sources if (w, v) in ratios]
        met = "yes" if best and min(best) >= threshold else ("no" if best else "not run")
        lines.append(
            f"| {row} | {text} | {'; '.join(ours) or '-'} | {'; '.join(sa_ping) or '-'} "
            f"| {'; '.join(peers) or '-'} | {met} | {'; '.join(psycopg) or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--targets", action="store_true", help="only the issue's target table")
    args = parser.parse_args()
    files = args.files or sorted(RESULTS_DIR.glob("*.json"))[-1:]
    payloads = [json.loads(f.read_text()) for f in files]
    print(targets(payloads) if args.targets else render(payloads))


if __name__ == "__main__":
    main()
