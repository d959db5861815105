"""The package layout the code must keep (ARCHITECTURE §10 and docs/architecture.md).

Read from the source files, no database: module size, where dialect names may be read, which
layer may import which, no cycles between sub-packages, ``type: ignore`` always with a code, and
domain packages free of SQLAlchemy. A rule broken here is a design regression, not a style nit.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "packages"
ADAPTER = PACKAGES / "cqrs-ddd-persistence-sqlalchemy" / "src" / "cqrs_ddd_persistence_sqlalchemy"
PKG = "cqrs_ddd_persistence_sqlalchemy"
MAX_LINES = 400

#: Layers of the adapter package, lowest first: a module imports its own layer or lower ones.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "schema",
            "serialization",
            "errors",
            "deprecation",
            "types",
            "mixins",
            "tables",
            "spec_kernel",
            "execution.protocol",
            "execution.pinning",
            "pooling",
        ),
    ),
    ("dialects", ("dialects",)),
    ("execution", ("execution",)),
    (
        "transactions",
        (
            "uow",
            "binding",
            "binding_scopes",
            "engine",
            "workers",
            "observability.tracing",
            "observability.metrics",
            "replicas",
        ),
    ),
    (
        "components",
        (
            "eventstore",
            "queue",
            "specifications",
            "outbox",
            "jobs",
            "scheduling",
            "sagas",
            "snapshots",
            "repository",
            "inbox",
            "leases",
            "projections",
        ),
    ),
    # ``observability`` (the hooks' re-exports) sits with the facades; its ``gauges`` read
    # every component's tables, ``prometheus`` serves them.
    ("facades", ("core", "advanced", "observability")),
    ("applications", ("publishers", "consumers", "cli", "alembic")),
]

#: Order among components: a component imports only components of a lower rank.
COMPONENT_RANK = {
    "eventstore": 0,
    "queue": 0,
    "specifications": 0,
    "outbox": 1,
    "jobs": 1,
    "scheduling": 1,
    "sagas": 1,
    "snapshots": 1,
    "repository": 1,
    "inbox": 1,
    "leases": 0,
    "projections": 2,
}

#: Where a dialect's or driver's name may be read: the dialect tree, the execution resolver,
#: and column types (``types/``), whose per-dialect behaviour lives in SQLAlchemy's own type
#: hooks (``load_dialect_impl``, bind / result processors) — type-level dispatch, the same
#: mechanism as ``@compiles``.
NAME_TESTS_ALLOWED = ("dialects", "execution.resolve", "types")
NAME_TEST = re.compile(
    r"dialect\.(name|driver)\b|get_(backend|driver)_name\(|"
    r"\.name\s*[!=]=\s*[\"'](postgresql|sqlite)[\"']"
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(ADAPTER.rglob("*.py")):
        parts = path.relative_to(ADAPTER).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer_of(module: str) -> tuple[int, str]:
    best: tuple[int, str, int] | None = None  # (layer index, prefix, prefix length)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[2]):
                best = (index, prefix, len(prefix))
    if best is None:
        # The package's own ``__init__`` (``create_engine``, ``metadata``, the errors, the
        # facades): an application-level entry point.
        return len(LAYERS) - 1, ""
    return best[0], best[1]


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported adapter module)`` for every import outside ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                skip.add(id(child))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PKG or node.module.startswith(PKG + "."):
                base = node.module[len(PKG) + 1 :]
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    out.append((node.lineno, sub if sub in MODULES else base))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PKG + "."):
                    out.append((node.lineno, alias.name[len(PKG) + 1 :]))
    return out


def test_no_module_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGES)): n
        for path in PACKAGES.glob("*/src/**/*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules by concept (max {MAX_LINES} lines): {long}"


def test_dialect_names_are_read_only_in_the_dialect_tree() -> None:
    found = []
    for module, path in MODULES.items():
        if any(module == p or module.startswith(p + ".") for p in NAME_TESTS_ALLOWED):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_TEST.search(line):
                found.append(f"{module}:{n}: {line.strip()}")
    assert found == [], "generic code must ask dialects.dialect_for(), not test names:\n" + (
        "\n".join(found)
    )


def test_imports_go_downward_only() -> None:
    wrong = []
    for module, path in MODULES.items():
        layer, prefix = _layer_of(module)
        for line, imported in _imports(path):
            if _top(imported) == _top(module):
                continue  # inside one sub-package
            their_layer, their_prefix = _layer_of(imported)
            if their_layer > layer:
                wrong.append(f"{module}:{line} imports {imported} (a layer above)")
            elif (
                their_layer == layer
                and LAYERS[layer][0] == "components"
                and COMPONENT_RANK[_top(their_prefix)] >= COMPONENT_RANK[_top(prefix)]
            ):
                wrong.append(f"{module}:{line} imports component {imported} (not below it)")
    assert wrong == [], "\n".join(wrong)


def _unit(module: str) -> str:
    """The unit a module belongs to for the cycle check: its layer prefix (``execution`` and
    ``execution.protocol`` are different units), else its top sub-package."""
    _, prefix = _layer_of(module)
    return prefix or _top(module)


def test_no_import_cycle_between_sub_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for _, imported in _imports(path):
            a, b = _unit(module), _unit(imported)
            if a and b and a != b:
                graph[a].add(b)
    cycles = []
    for start in list(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_type_ignores_name_their_error_code() -> None:
    bare = [
        f"{path.relative_to(PACKAGES)}:{n}"
        for path in PACKAGES.glob("*/src/**/*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"type:\s*ignore(?!\[)", line)
    ]
    assert bare == []


@pytest.mark.parametrize(
    "package",
    ["cqrs-ddd-core", "cqrs-ddd-specifications", "cqrs-ddd-advanced-core"],
)
def test_domain_packages_do_not_import_sqlalchemy(package: str) -> None:
    users = [
        str(path.relative_to(PACKAGES))
        for path in (PACKAGES / package / "src").rglob("*.py")
        if re.search(r"^\s*(from|import)\s+sqlalchemy\b", path.read_text(), re.M)
    ]
    assert users == []


def test_private_sqlalchemy_and_driver_internals_only_in_the_fast_path() -> None:
    internal = re.compile(
        r"sqlalchemy\.util\.concurrency|greenlet|\.positiontup|compiled\.binds|"
        r"(?<!get_)raw_connection\(|driver_connection\.(fetch|execute)"
    )
    found = [
        f"{module}:{n}"
        for module, path in MODULES.items()
        if not module.startswith("execution.asyncpg")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if internal.search(line)
    ]
    assert found == []
