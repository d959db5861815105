"""The benchmark command as the README runs it, at tiny sizes (``--quick``).

No timing is asserted: only that the command runs, prints its table with ratios, and that the
correctness checks built into the workloads (exactly-once job completion, a subscriber that
misses nothing) hold.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from tests.acceptance.conftest import ROOT
from tests.conftest import PG_URL, require_postgres


def _bench(*args: str) -> str:
    env = dict(os.environ, CQRS_BENCH_POSTGRES_URL=PG_URL)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_bench_lists_every_workload() -> None:
    out = _bench("--list")
    for name in (
        "es.append_1",
        "peer.append_1",
        "peer.writers_8",
        "repo.get",
        "spec.build",
        "jobs.claim_complete_50",
        "tail.lag",
    ):
        assert name in out


def test_bench_quick_specifications_table() -> None:
    out = _bench("spec.per_query", "--quick")
    assert "cpu_count=" in out and "sqlalchemy=" in out
    assert "(baseline)" in out
    assert re.search(r"build_sqla_filter\s+median .* \d+\.\d\dx baseline", out), out
    assert re.search(r"\d+\.\d\dx baseline \(paired \d+\.\d\dx\)", out), out


def test_paired_ratio_pairs_samples_of_the_same_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # the benchmarks live beside the packages
    from benchmarks.harness import paired_ratio

    # The machine is twice as slow in the second run: both variants feel it.
    ours, raw = [90.0, 45.0, 92.0], [100.0, 50.0, 100.0]
    assert paired_ratio(ours, raw) == 0.9
    # The ratio of the medians mixes runs: 90 / 100.
    assert sorted(ours)[1] / sorted(raw)[1] == 0.9
    ours, raw = [90.0, 40.0, 30.0], [100.0, 50.0, 25.0]
    assert paired_ratio(ours, raw) == 0.9  # 0.9, 0.8, 1.2
    assert sorted(ours)[1] / sorted(raw)[1] == 0.8  # 40 / 50


def test_bench_quick_on_postgres() -> None:
    require_postgres()
    out = _bench("peer.append_1", "repo.get", "jobs.claim_complete_50", "tail.lag", "--quick")
    assert out.count("(baseline)") == 4, out
    # eventsourcing is measured when installed (the bench group), else said to be skipped
    assert "eventsourcing recorder" in out
    # the tailing subscriber never misses or repeats an event (the raw position cursor may)
    ours_lines = [line for line in out.splitlines() if line.strip().startswith("ours ")]
    tail_lines = [line for line in ours_lines if "missed" in line]
    assert tail_lines, out
    assert all("missed 0, duplicates 0" in line for line in tail_lines), out
