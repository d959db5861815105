"""Extract the ```python blocks of a Markdown file and run them in order, as a reader would.

Conventions (an HTML comment on the line(s) before a block):

- ``<!-- no-run -->``: an illustrative fragment, not executed (keep these few).
- ``<!-- requires: postgres -->``: needs a PostgreSQL server; the test runs it against a
  throw-away database (the README's ``postgresql+asyncpg://postgres@127.0.0.1:5432/test`` is
  replaced by that database's URL) and skips it when no server is reachable.
- ``<!-- requires: kafka -->``: needs a Kafka broker; the test runs it against the session's
  broker (``tests/kafka_broker.py``: ``127.0.0.1:9092`` in the block is replaced by its
  address).

The blocks of one file share one namespace (a later block may use what an earlier one defined)
and may use top-level ``await``; a block that calls ``asyncio.run`` runs outside any loop.

Run as a script: ``python docs_blocks.py README.md [--postgres-url URL] [--kafka HOST:PORT]``;
exits non-zero naming the failing block's line.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

README_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
README_KAFKA = "127.0.0.1:9092"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_MARK = re.compile(r"<!--\s*(no-run|requires:\s*postgres|requires:\s*kafka)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    no_run: bool
    postgres: bool
    kafka: bool = False


def extract(text: str) -> list[Block]:
    """Every ```python block of ``text`` with its markers."""
    blocks: list[Block] = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        marks = set()
        for previous in reversed(before):
            found = _MARK.search(previous.strip())
            if not found:
                break
            marks.add(found.group(1).split(":")[-1].strip())
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(
            Block(line, match.group(1), "no-run" in marks, "postgres" in marks, "kafka" in marks)
        )
    return blocks


def run_blocks(path: Path, postgres_url: str | None, kafka: str | None = None) -> int:
    # A real module: pydantic and SQLAlchemy resolve annotations through sys.modules.
    module = types.ModuleType("__readme__")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    runner = asyncio.Runner()
    ran = 0
    try:
        for block in extract(path.read_text()):
            if block.no_run:
                continue
            code = block.code
            if block.postgres:
                if postgres_url is None:
                    print(f"{path}:{block.line}: skipped (no PostgreSQL)")
                    continue
                code = code.replace(README_PG_URL, postgres_url)
            if block.kafka:
                if kafka is None:
                    print(f"{path}:{block.line}: skipped (no Kafka broker)")
                    continue
                code = code.replace(README_KAFKA, kafka)
            compiled = compile(
                code, f"{path}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            try:
                if compiled.co_flags & inspect.CO_COROUTINE:
                    runner.run(eval(compiled, namespace))
                else:
                    exec(compiled, namespace)
            except BaseException:
                traceback.print_exc()
                print(f"FAILED: {path}:{block.line}", file=sys.stderr)
                return 1
            ran += 1
    finally:
        runner.close()
    print(f"{path}: {ran} block(s) ran")
    return 0


if __name__ == "__main__":
    # Blocks run from the repository root, as a reader would run them (``python -c``).
    sys.path[0] = os.getcwd()
    args = sys.argv[1:]
    url = None
    if "--postgres-url" in args:
        i = args.index("--postgres-url")
        url = args[i + 1]
        del args[i : i + 2]
    kafka = None
    if "--kafka" in args:
        i = args.index("--kafka")
        kafka = args[i + 1]
        del args[i : i + 2]
    sys.exit(run_blocks(Path(args[0]), url, kafka))
