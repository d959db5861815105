"""Every ```python block of the README files runs (see docs_blocks.py for the conventions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.acceptance.conftest import ROOT, cli_env
from tests.acceptance.docs_blocks import extract
from tests.conftest import postgres_error

HERE = Path(__file__).parent

# READMEs whose blocks a component's own test already runs (not run twice).
COVERED_ELSEWHERE = {
    # tests/unit/specifications/test_spec_readme.py
    "packages/cqrs-ddd-specifications/README.md",
    "packages/cqrs-ddd-persistence-sqlalchemy/src/cqrs_ddd_persistence_sqlalchemy/"
    "specifications/README.md",
}


def readmes() -> list[Path]:
    """Every README.md of the repository (outside hidden and virtual-env directories)."""
    found = sorted(
        p
        for p in ROOT.rglob("README.md")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    )
    return [
        p
        for p in found
        if str(p.relative_to(ROOT)) not in COVERED_ELSEWHERE
        and any(not b.no_run for b in extract(p.read_text()))
    ]


@pytest.mark.parametrize("readme", readmes(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_readme_blocks_run(readme: Path, request: pytest.FixtureRequest) -> None:
    blocks = extract(readme.read_text())
    args = [sys.executable, "-W", "error", str(HERE / "docs_blocks.py"), str(readme)]
    if any(b.postgres and not b.no_run for b in blocks) and postgres_error() is None:
        args += ["--postgres-url", request.getfixturevalue("pg_database")]
    if any(b.kafka and not b.no_run for b in blocks):
        args += ["--kafka", request.getfixturevalue("kafka_bootstrap")]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=120, cwd=ROOT, env=cli_env(), check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_docs_no_run_markers_are_few() -> None:
    """Illustrative fragments stay the exception, not the rule."""
    total = skipped = 0
    for readme in readmes():
        blocks = extract(readme.read_text())
        total += len(blocks)
        skipped += sum(b.no_run for b in blocks)
    assert skipped <= max(3, total // 5), f"{skipped} of {total} blocks are marked no-run"


def test_docs_extract_markers() -> None:
    text = (
        "x\n<!-- no-run -->\n```python\na = 1\n```\n\n<!-- requires: postgres -->\n\n"
        "```python\nb = 2\n```\n```python\nc = 3\n```\n"
    )
    blocks = extract(text)
    assert [(b.no_run, b.postgres, b.code) for b in blocks] == [
        (True, False, "a = 1\n"),
        (False, True, "b = 2\n"),
        (False, False, "c = 3\n"),
    ]
    assert blocks[0].line == 4
    [kafka] = extract("<!-- requires: kafka -->\n```python\nd = 4\n```\n")
    assert (kafka.kafka, kafka.postgres, kafka.no_run) == (True, False, False)
