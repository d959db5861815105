"""Run the test suite on the supported stacks (called by ``./scripts/test``; see its header).

A stack is an environment (which SQLAlchemy and drivers are installed) and the PostgreSQL driver
the tests' URL names. Two environments:

- ``.venv``: what ``uv.lock`` resolves (the newest SQLAlchemy 2.1, asyncpg, psycopg, aiosqlite).
- ``.venvs/lowest``: the same lock, then SQLAlchemy and every database driver at the lower bound
  ``cqrs-ddd-persistence-sqlalchemy`` declares, and pydantic at ``cqrs-ddd-core``'s (read from
  their ``pyproject.toml``, so a bound cannot change without being tested). Rebuilt only when
  ``uv.lock``, the bounds or the interpreter changed (a stamp file records them); needs the
  index only when the uv cache lacks a wheel, so ``UV_OFFLINE=1`` works once it was built.

Environment: ``CQRS_STACKS`` (``all``, or stack names separated by commas; default ``all``
without arguments, ``default`` with), ``CQRS_TEST_WORKERS`` (pytest-xdist workers per full
run, default 2; 0 runs in one process), ``CQRS_TEST_POSTGRES_URL`` (the server; each stack
swaps in its driver), ``CQRS_TEST_REPORT_DIR`` (keep each stack's JUnit XML there).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pg_spare
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "packages" / "cqrs-ddd-persistence-sqlalchemy" / "pyproject.toml"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
#: The distributions a stack varies, with the extra of the persistence package declaring each.
VARIED = {"sqlalchemy": None, "asyncpg": "postgres", "psycopg": "psycopg", "aiosqlite": "sqlite"}
#: Varied too, at the lower bound another of the project's packages declares.
VARIED_ELSEWHERE = {"pydantic": ROOT / "packages" / "cqrs-ddd-core" / "pyproject.toml"}
#: Suites every stack but the default runs (the reliability and acceptance suites run on the
#: default stack only: they test processes and faults, not the SQLAlchemy/driver combination).
CONTRACT_AND_INTEGRATION = ("tests/integration",)


@dataclass(frozen=True)
class Stack:
    name: str
    env: str  # "default" (.venv) or "lowest" (.venvs/lowest)
    driver: str  # the PostgreSQL driver of the test URL
    paths: tuple[str, ...]  # what runs when ./scripts/test gets no arguments ((): everything)
    #: False where another stack already runs the SQLite half in the same environment
    #: (SQLite does not depend on the PostgreSQL driver): only PostgreSQL tests run.
    sqlite: bool = True


STACKS = (
    Stack("default", "default", "asyncpg", ()),
    Stack("psycopg", "default", "psycopg", CONTRACT_AND_INTEGRATION, sqlite=False),
    # tests/unit once on the lowest SQLAlchemy: statement compilation is version-dependent
    Stack("lowest-asyncpg", "lowest", "asyncpg", ("tests/unit", *CONTRACT_AND_INTEGRATION)),
    Stack("lowest-psycopg", "lowest", "psycopg", CONTRACT_AND_INTEGRATION, sqlite=False),
)
#: Deselects the SQLite half (parameter ids ``sqlite``, ``spatialite``, ``memory-sqlite``...;
#: checked: no PostgreSQL test of tests/integration has either word in its name).
NO_SQLITE = ("-k", "not sqlite and not spatialite")
#: Tests of the asyncpg fast path itself are not collected where the driver is another.
NOT_ASYNCPG = ("-m", "not asyncpg_only")


def main(argv: list[str]) -> int:
    chosen = choose(os.environ.get("CQRS_STACKS") or ("default" if argv else "all"))
    workers = int(os.environ.get("CQRS_TEST_WORKERS", "2")) if not argv else 0
    base_url = os.environ.get("CQRS_TEST_POSTGRES_URL", DEFAULT_PG_URL)
    # a stopped run (CI timeout, kill) still drops its spare clusters: finally blocks run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # every environment before the first test: a failing install fails fast
    pythons = {kind: environment(kind) for kind in dict.fromkeys(s.env for s in chosen)}
    with servers(base_url, workers) as (urls, workers):
        results = [run_stack(s, pythons[s.env], argv, urls, workers) for s in chosen]
    print("\n==> stacks")
    for stack, versions, rc, counts in results:
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"{stack.name:<15} {status:<16} {counts}  [{versions}]")
    return overall([rc for _, _, rc, _ in results])


@contextlib.contextmanager
def servers(base_url: str, workers: int) -> Iterator[tuple[list[str], int]]:
    """The PostgreSQL URL of each pytest-xdist worker and the number of workers: the first on
    ``base_url``, the others on spare clusters made on this machine (``pg_spare.py`` says why);
    one process, on ``base_url``, when they cannot be made or ``base_url`` is another machine."""
    if workers < 2:
        yield [base_url], 0
        return
    base = make_url(base_url)
    local = base.host in ("127.0.0.1", "localhost", "::1") or not base.host
    reason = pg_spare.unavailable() if local else f"{base.host} is not this machine"
    if reason:
        print(f"==> one pytest process per stack: no spare PostgreSQL cluster ({reason})")
        yield [base_url], 0
        return
    print(f"==> {workers - 1} spare PostgreSQL cluster(s) for {workers} pytest-xdist workers")
    with pg_spare.spare_clusters(workers - 1) as hosts:
        spares = [
            base.set(host=host.split(":")[0], port=int(host.split(":")[1]), database="test")
            .set(username="postgres", password=None)
            .render_as_string(hide_password=False)
            for host in hosts
        ]
        yield [base_url, *spares], workers


def run_stack(
    stack: Stack, python: Path, argv: list[str], urls: list[str], workers: int
) -> tuple[Stack, str, int, str]:
    if argv:
        args = list(argv)
    else:
        args = [
            *xdist(workers),
            *(() if stack.sqlite else NO_SQLITE),
            *(() if stack.driver == "asyncpg" else NOT_ASYNCPG),
            *stack.paths,
        ]
    found = installed(python)
    names = ["sqlalchemy", stack.driver, *(["aiosqlite"] if stack.sqlite else []), "pydantic"]
    versions = ", ".join(f"{n} {found.get(n, '-')}" for n in names)
    print(f"\n==> stack {stack.name}: {versions}", flush=True)
    print(f"    pytest {' '.join(args)}", flush=True)
    env = {
        "CQRS_TEST_POSTGRES_URL": with_driver(urls[0], stack.driver),
        "CQRS_TEST_POSTGRES_URLS": " ".join(with_driver(u, stack.driver) for u in urls),
    }
    rc, counts = run_pytest(python, args, env, stack.name)
    return stack, versions, rc, counts


def choose(spec: str) -> list[Stack]:
    if spec == "all":
        return list(STACKS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    known = {s.name: s for s in STACKS}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        sys.exit(f"CQRS_STACKS: unknown stack {unknown or spec!r}; known: all, {', '.join(known)}")
    return [known[n] for n in names]


def xdist(workers: int) -> list[str]:
    return ["-n", str(workers)] if workers > 0 else []


def with_driver(url: str, driver: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        sys.exit(f"CQRS_TEST_POSTGRES_URL is not a PostgreSQL URL: {url}")
    return f"postgresql+{driver}://{rest}"


def lower_bounds() -> list[str]:
    """``name==version`` for each varied distribution, from the packages' ``>=`` bounds."""
    project = tomllib.loads(PACKAGE.read_text())["project"]
    optional = project["optional-dependencies"]
    wanted = [
        (name, optional[extra] if extra else project["dependencies"], PACKAGE)
        for name, extra in VARIED.items()
    ]
    for name, path in VARIED_ELSEWHERE.items():
        wanted.append((name, tomllib.loads(path.read_text())["project"]["dependencies"], path))
    pins = []
    for name, specs, path in wanted:
        for spec in specs:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", spec)
            if match and match.group(1).lower() == name:
                pins.append(f"{name}{match.group(2) or ''}=={match.group(3)}")
                break
        else:
            sys.exit(f"{path}: no '{name}>=…' lower bound to test")
    return pins


def environment(kind: str) -> Path:
    """The interpreter of the environment ``kind``; builds ``.venvs/lowest`` when stale."""
    if kind == "default":
        return ROOT / ".venv" / "bin" / "python"
    env = ROOT / ".venvs" / kind
    pins = lower_bounds()
    # the interpreter .venv was built on (scripts/_bootstrap.sh chose it: SpatiaLite support)
    base = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", "import sys; print(sys._base_executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stamp = hashlib.sha256()
    stamp.update((ROOT / "uv.lock").read_bytes())
    stamp.update("\n".join([*pins, base]).encode())
    stamp_file = env / ".stack-stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp.hexdigest():
        return env / "bin" / "python"
    print(f"==> building {env.relative_to(ROOT)}: uv.lock, then {' '.join(pins)}", flush=True)
    shutil.rmtree(env, ignore_errors=True)
    uv_env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(env), UV_PYTHON=base)
    uv_env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        ["uv", "sync", "--all-packages", "--frozen", "--quiet"], cwd=ROOT, env=uv_env, check=True
    )
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(env / "bin" / "python"), *pins],
        cwd=ROOT,
        env=uv_env,
        check=True,
    )
    stamp_file.write_text(stamp.hexdigest())
    return env / "bin" / "python"


def installed(python: Path) -> dict[str, str]:
    """The installed version of each varied distribution (missing ones left out)."""
    code = (
        "import importlib.metadata as m\n"
        f"for n in {[*VARIED, *VARIED_ELSEWHERE]!r}:\n"
        "    try: print(n, m.version(n))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def run_pytest(python: Path, args: list[str], urls: dict[str, str], name: str) -> tuple[int, str]:
    """Run pytest (terminal untouched: ``--pdb`` works); counts come from a JUnit report, kept
    as ``<CQRS_TEST_REPORT_DIR>/<stack>.xml`` when that is set."""
    with tempfile.TemporaryDirectory(prefix="cqrs-stack-") as tmp:
        keep = os.environ.get("CQRS_TEST_REPORT_DIR")
        report = Path(keep or tmp) / f"{name}.xml"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.unlink(missing_ok=True)
        env = dict(os.environ, **urls)
        env.pop("VIRTUAL_ENV", None)
        started = time.monotonic()
        rc = subprocess.run(
            [str(python), "-m", "pytest", f"--junitxml={report}", *args], cwd=ROOT, env=env
        ).returncode
        elapsed = time.monotonic() - started
        return rc, f"{counts(report)} in {elapsed:.0f}s"


def counts(report: Path) -> str:
    if not report.exists():
        return "no tests ran"
    suite = ET.parse(report).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    total, failed, errors, skipped = (
        int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
    )
    passed = total - failed - errors - skipped
    return f"{passed} passed, {failed} failed, {errors} errors, {skipped} skipped"


def overall(codes: list[int]) -> int:
    """0 when every stack passed; 5 (pytest's "no tests collected") only when nothing else
    failed; otherwise the first failing stack's code."""
    failing = [c for c in codes if c != 0]
    if not failing:
        return 0
    return next((c for c in failing if c != 5), 5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
