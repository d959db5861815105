"""Client instructions per operation of a workload's variants, counted by valgrind.

The harness's same-run ratios move by 0.05-0.1 between runs on a shared machine; an instruction
count barely moves (hash seed fixed: within about 1% from run to run). It counts the client's
work only (the server's time and the network are not in it), so it says how much of a ratio's
gap is the library's own Python, and whether a change removed some of it::

    uv run python -m benchmarks.instructions uow.command "ours (seed pattern)" "raw asyncpg"
    uv run python -m benchmarks.instructions uow.append_100 "ours, uow, store per call" \
        "raw asyncpg" --scale 0.25 --runs 3

Variants are named by a prefix of their harness name. Needs valgrind (Debian: ``apt-get install
valgrind``). The workload is built with counting off (imports, schema); each variant runs once
to warm up, then ``--runs`` times counted: ``callgrind_control`` switches counting on and dumps
the counters around those runs. Instructions per operation = the dump's total / the operations
the runs reported (their rate times their time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = "CQRS_BENCH_INSTRUCTIONS_CHILD"


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


async def _count(workload: str, prefixes: list[str], runs: int, scale: float) -> None:
    """Under valgrind: run the variants, dumping the counters around each one's runs."""
    from benchmarks import harness, run

    run.load_modules()
    (spec,) = harness.select([workload])
    ctx = harness.Context(runs=runs, scale=scale, idle_wait=False)
    try:
        variants = await spec.build(ctx)
        chosen = [v for p in prefixes for v in variants if v.name.startswith(p)]
        for v in chosen:
            if v.setup is not None:
                await v.setup()
        for index, v in enumerate(chosen):
            await v.run()  # warm: statements prepared, connections lent
            _control("-i", "on")
            _control("-d", "start")  # counters from here
            ops = 0.0
            for _ in range(runs):
                started = time.perf_counter()
                rate = await v.run()
                ops += rate * (time.perf_counter() - started)
            _control("-d", f"variant{index}")
            _control("-i", "off")
            print(f"OPS {index} {round(ops)} {v.name}", flush=True)
    finally:
        while ctx.cleanup:
            await ctx.cleanup.pop()()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", help="one workload name, e.g. uow.command")
    parser.add_argument("variants", nargs="+", help="variant name prefixes")
    parser.add_argument("--runs", type=int, default=5, help="counted runs per variant")
    parser.add_argument("--scale", type=float, default=0.2, help="multiply workload sizes")
    args = parser.parse_args(argv)
    if os.environ.get(_CHILD):
        try:  # the harness's loop when the bench group is installed
            import uvloop
        except ImportError:
            asyncio.run(_count(args.workload, args.variants, args.runs, args.scale))
        else:
            uvloop.run(_count(args.workload, args.variants, args.runs, args.scale))
        return
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}/cg.%p",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            *sys.argv[1:],
        ]
        env = {**os.environ, _CHILD: "1", "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        ops = {
            int(m[1]): (int(m[2]), m[3])
            for m in re.finditer(r"^OPS (\d+) (\d+) (.*)$", done.stdout, re.M)
        }
        if done.returncode != 0 or not ops:
            sys.exit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        for dump in sorted(Path(out).glob("cg.*.*")):
            text = dump.read_text(errors="replace")
            trigger = re.search(r"^desc: Trigger: dump variant(\d+)$", text, re.M)
            total = re.search(r"^summary: (\d+)$", text, re.M)
            if trigger and total:
                count, name = ops[int(trigger[1])]
                print(f"{name:40s} {int(total[1]) / count / 1000:9.1f}k instructions / op")


if __name__ == "__main__":
    main()
