"""The runnable examples of ``core/EVENT_STORE.md`` run as written (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import pg_connect_args

import cqrs_ddd_persistence_sqlalchemy.core as core_pkg

DOC = Path(core_pkg.__file__).with_name("EVENT_STORE.md")
BLOCKS = [
    b
    for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    if "asyncio.run(main())" in b
]


def test_the_doc_has_runnable_examples() -> None:
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_example_runs(
    index: int, engine: AsyncEngine, tmp_path: Path, dialect_name: str
) -> None:
    if dialect_name == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}"
        kwargs: dict[str, Any] = {}
    else:
        async with engine.connect() as conn:  # the test's isolated schema
            search_path = (await conn.execute(text("SHOW search_path"))).scalar_one()
        url = engine.url.render_as_string(hide_password=False)
        kwargs = {"connect_args": pg_connect_args(url, search_path=search_path)}
    source = BLOCKS[index].replace("asyncio.run(main())", "")
    if kwargs:
        source = source.replace("engine = create_engine(url)", "engine = create_engine(url, **kw)")
        source = source.replace("async def main(url: str", "async def main(kw: Any, url: str")
    namespace: dict[str, Any] = {"__name__": f"es_docs_example_{index}", "Any": Any}
    exec(compile(source, f"EVENT_STORE.md#{index}", "exec"), namespace)
    if kwargs:
        await namespace["main"](kwargs, url)
    else:
        await namespace["main"](url)
